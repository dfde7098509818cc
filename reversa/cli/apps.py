"""Which code the CLI runs for a recorded saga: registries, services, and whom to trust.

A saga records the import paths of its registry (``app``) and of its services
factory (``services``). Retrying a rollback, running a forward recovery or
dry-running one needs both, so the CLI can import them itself -- but importing
a module runs its code, and those paths come from a database row. Anyone able
to write that row (a compromised agent, a shared staging database) could then
choose what code runs in the operator's shell. So the rule is:

- ``--app`` / ``--services`` given on the command line are always used (the
  operator chose them);
- a *recorded* path is imported automatically only when it is importable here
  AND trusted: Reversa's own modules (``reversa.*``), modules under a prefix
  listed in ``REVERSA_TRUSTED_APPS`` (comma-separated, e.g. ``myapp,acme.flows``),
  or any recorded path when the operator passes ``--trust-recorded-app``;
- otherwise the command stops with one line naming the recorded path and the
  three ways to accept it.

Modules are looked up from the current directory too (as ``flask --app`` and
``celery -A`` do), so ``--app myapp:registry`` finds ``./myapp.py``.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

from ..core.errors import ConfigError, ReversaError
from ..core.redact import scrub
from ..core.registry import Registry

__all__ = [
    "BUILT_IN",
    "TRUST_ENV",
    "call_factory",
    "load_attr",
    "load_registry",
    "load_services",
    "saga_code",
    "trusted",
]

TRUST_ENV = "REVERSA_TRUSTED_APPS"
BUILT_IN = ("reversa",)


def trusted(spec: str, *, trust_recorded: bool = False) -> bool:
    """Whether a recorded ``module:attr`` may be imported without being named by hand."""
    if trust_recorded:
        return True
    module = spec.partition(":")[0]
    listed = [p.strip() for p in os.environ.get(TRUST_ENV, "").split(",") if p.strip()]
    return any(module == prefix or module.startswith(prefix + ".")
               for prefix in (*BUILT_IN, *listed))


def load_registry(apps: Iterable[str], hints: Iterable[str | None] = ()) -> Registry:
    """Import registries named ``module:attr`` and merge them.

    ``hints`` are recorded paths: only trusted ones (see :func:`trusted`) are
    imported, the others are ignored, so a database row never chooses the code.
    """
    registry = Registry()
    wanted = list(apps) + [h for h in hints if h and trusted(h)]
    for spec in dict.fromkeys(wanted):
        found = _attr(spec, "--app", "package.module:attribute")
        if callable(found) and not isinstance(found, Registry):
            found = call_factory(spec, "--app", found)
        if not isinstance(found, Registry):
            raise ConfigError(f"--app {spec!r}: {spec.partition(':')[2]} is not a "
                              "reversa.Registry (nor a function returning one)")
        registry = registry.merged(found)
    return registry


def load_services(spec: str) -> dict[str, Any]:
    """Import ``module:factory`` and call it for the services mapping."""
    factory = _attr(spec, "--services", "package.module:factory")
    services = call_factory(spec, "--services", factory) if callable(factory) else factory
    if not isinstance(services, dict):
        raise ConfigError(f"--services {spec!r} must return a dict of name -> resource")
    return services


def saga_code(
    saga_id: str,
    recorded_app: str | None,
    recorded_services: str | None,
    *,
    apps: list[str] | None = None,
    services: str | None = None,
    trust_recorded: bool = False,
) -> tuple[Registry, dict[str, Any]]:
    """The registry and services to run a saga's handlers with.

    ``apps`` / ``services`` (from the command line) override what the saga
    recorded; recorded paths are used only when :func:`trusted`.

    Raises:
        ConfigError: Nothing to load, an untrusted recorded path, or an import failure.
    """
    if apps:
        registry = load_registry(apps)
    elif recorded_app is None:
        raise ConfigError(f"saga {saga_id} did not record the registry its handlers come "
                          "from; pass --app package.module:registry (and --services "
                          "package.module:factory if its handlers need services)")
    else:
        _check_trusted(saga_id, "app", recorded_app, "--app", trust_recorded)
        registry = load_registry([recorded_app])
    spec = services or recorded_services
    if spec is None:
        return registry, {}
    if not services:
        _check_trusted(saga_id, "services factory", spec, "--services", trust_recorded)
    return registry, load_services(spec)


def _check_trusted(saga_id: str, what: str, spec: str, flag: str, trust: bool) -> None:
    if trusted(spec, trust_recorded=trust):
        return
    root = spec.partition(":")[0].split(".")[0]
    raise ConfigError(
        f"saga {saga_id} records its {what} as {spec!r}, which is not imported "
        f"automatically (a database row must not choose the code run here); pass "
        f"{flag} {spec}, or --trust-recorded-app, or add {root!r} to {TRUST_ENV}")


def load_attr(spec: str, flag: str, form: str) -> Any:
    """Import ``module:attribute`` named on the command line by ``flag``.

    Raises:
        ConfigError: The spec is malformed, the module does not import, or it
            has no such attribute; the message names the flag and the fix.
    """
    return _attr(spec, flag, form)


def _attr(spec: str, flag: str, form: str) -> Any:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"{flag} {spec!r}: use '{form}'")
    _cwd_on_path()
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{flag} {spec!r}: cannot import {module_name} ({exc}); install it "
                          "or run from the directory that holds it") from exc
    except ReversaError:
        raise  # already says what is wrong (a misspelt hook registered at import...)
    except Exception as exc:
        raise _user_code_failed(spec, flag, f"importing {module_name}", exc) from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"{flag} {spec!r}: module {module_name} has no {attr!r}") from None


def call_factory(spec: str, flag: str, factory: Callable[[], Any]) -> Any:
    """Call the factory ``spec`` named on the command line by ``flag``.

    Raises:
        ConfigError: The factory raised; the message names the spec, the
            exception and the fix (the user's code, not Reversa, is at fault).
    """
    try:
        return factory()
    except ReversaError:
        raise
    except Exception as exc:
        raise _user_code_failed(spec, flag, f"calling {spec.partition(':')[2]}()", exc) from exc


def _user_code_failed(spec: str, flag: str, doing: str, exc: Exception) -> ConfigError:
    # The user's module or factory is broken: bad input, not a bug in Reversa. Its
    # message may quote configuration (a URL with a password), hence scrub().
    said = " ".join(str(exc).split())
    what = f"{type(exc).__name__}: {said}" if said else type(exc).__name__
    return ConfigError(f"{flag} {spec!r}: {doing} raised {scrub(what)}; fix that error in "
                       "your app and run the command again")


def _cwd_on_path() -> None:
    # The console script, unlike `python -m`, does not put the working directory
    # on sys.path; flask and celery add it so `--app myapp:...` finds ./myapp.py.
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
