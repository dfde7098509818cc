"""Declared-sensitive fields: which parts of inputs and results the store never keeps in clear.

A saga or a step names fields with a small path syntax:

- segments are separated by dots: ``card_number``, ``payer.iban``;
- ``*`` matches every key of an object or every element of a list:
  ``cards.*.pan``;
- a segment of digits indexes a list (``cards.0.pan``), or matches an object key
  spelled the same way;
- a leading root says whose field it is: ``$input.`` (the saga's input),
  ``$result.`` (the declaring step's result), ``$results.<step>.`` (a named
  step's result). Without a root, a path on a ``Saga`` names an input field
  and a path on a ``Step`` names a field of that step's result.

Keys containing dots cannot be named (use ``*`` on their parent). A path that
matches nothing in a given value is not an error: optional fields stay optional.

The store and the audit chain keep, instead of each matched value, a salted
digest ``[redacted:<24 hex>]`` (HMAC-SHA256 keyed by a secret derived from the
signing key, over the saga id, the concrete path and the value) or, without a
signing key, the bare marker ``[redacted]``. Holders of the key can check a
claimed value against a digest; nobody can read or guess it from the database.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .canonical import canonical_json

__all__ = ["Paths", "compile_paths", "parse_path", "redact", "redaction_marker"]

Path = tuple[str, ...]
Paths = tuple[Path, ...]

_SEGMENT = re.compile(r"^(\*|[A-Za-z0-9_\-:]+)$")
MARK = "[redacted]"


def parse_path(text: str, *, owner: str) -> tuple[str, str | None, Path]:
    """Split a declared path into (root, step, segments).

    ``root`` is ``"input"`` or ``"results"``; ``step`` is the step whose
    result it names (None for the input, or for ``$result.`` on a step, which
    the caller resolves). ``owner`` is ``"saga"`` or ``"step"``: the default root.

    Raises:
        ValueError: The path is malformed; the message names it and the syntax.
    """
    body, root, step = text, "input" if owner == "saga" else "results", None
    if text.startswith("$input."):
        body, root = text[len("$input."):], "input"
    elif text.startswith("$result."):
        if owner != "step":
            raise ValueError(f"sensitive path {text!r}: '$result.' is only meaningful on a "
                             "Step; on a Saga use '$results.<step>.<field>'")
        body, root = text[len("$result."):], "results"
    elif text.startswith("$results."):
        step, _, body = text[len("$results."):].partition(".")
        root = "results"
    elif text.startswith("$"):
        raise ValueError(f"sensitive path {text!r}: a root must be '$input.', '$result.' or "
                         "'$results.<step>.'")
    segments = tuple(body.split("."))
    if not body or not all(_SEGMENT.match(s) for s in segments) or step == "":
        raise ValueError(
            f"sensitive path {text!r} is malformed; use dot-separated field names, '*' for "
            "every key or element, digits for a list index (e.g. 'payer.iban', 'cards.*.pan')")
    return root, step, segments


def compile_paths(
    saga_paths: Iterable[str], steps: Iterable[tuple[str, Iterable[str]]]
) -> tuple[Paths, dict[str, Paths]]:
    """Group every declaration of a plan into input paths and per-step result paths."""
    inputs: list[Path] = []
    results: dict[str, list[Path]] = {}
    for text in saga_paths:
        root, step, segments = parse_path(text, owner="saga")
        if root == "input":
            inputs.append(segments)
        else:
            results.setdefault(str(step), []).append(segments)
    for name, declared in steps:
        for text in declared:
            root, step, segments = parse_path(text, owner="step")
            if root == "input":
                inputs.append(segments)
            else:
                results.setdefault(step or name, []).append(segments)
    return (tuple(dict.fromkeys(inputs)),
            {k: tuple(dict.fromkeys(v)) for k, v in results.items()})


def redaction_marker(key: bytes | None, saga_id: str) -> Callable[[str, Any], str]:
    """The function replacing one value: salted digest with a key, bare marker without."""
    if key is None:
        return lambda _path, _value: MARK

    def mark(path: str, value: Any) -> str:
        body = canonical_json([saga_id, path, value]).encode()
        return f"[redacted:{hmac.new(key, body, hashlib.sha256).hexdigest()[:24]}]"

    return mark


def redact(value: Any, paths: Paths, mark: Callable[[str, Any], str]) -> Any:
    """A copy of ``value`` with every field matched by ``paths`` replaced by ``mark``.

    ``value`` itself is never modified (the engine keeps using the clear value
    in memory; only what is written is redacted).
    """
    if not paths or value is None:
        return value
    out = value
    for path in paths:
        out = _apply(out, path, (), mark)
    return out


def _apply(value: Any, path: Path, where: Path, mark: Callable[[str, Any], str]) -> Any:
    if not path:
        if isinstance(value, str) and value.startswith("[redacted"):
            return value  # already a marker: redacting twice must not change it
        return mark(".".join(where), value)
    head, rest = path[0], path[1:]
    if isinstance(value, Mapping):
        keys = list(value) if head == "*" else [head] if head in value else []
        if not keys:
            return value
        copy = dict(value)
        for key in keys:
            copy[key] = _apply(value[key], rest, (*where, str(key)), mark)
        return copy
    if isinstance(value, list):
        if head == "*":
            indexes = range(len(value))
        elif head.isdigit() and int(head) < len(value):
            indexes = range(int(head), int(head) + 1)
        else:
            return value
        items = list(value)
        for i in indexes:
            items[i] = _apply(value[i], rest, (*where, str(i)), mark)
        return items
    return value
