#!/usr/bin/env bash
# The README's test command: install what the suite needs, then run the whole suite.
#   bash scripts/test.sh [pytest args...]
#
# Which Python: inside an active virtual environment, that one. Otherwise (the system or
# pyenv Python) the suite runs in ./.venv of this checkout, created with `python3 -m venv`
# on first use, so nothing is ever pip-installed into a system interpreter (Debian's
# refuses it anyway, PEP 668).
#
# What it installs: the package with every extra and the dev tools (pip install -e
# '.[all,dev]'); PostgreSQL server binaries, Debian's chromium (for the browser tests)
# and npm when missing (apt-get, when running as root); anvil from the npm package
# @foundry-rs/anvil (scripts/setup-anvil.sh, into .tools/anvil).
# A part that is missing and cannot be installed fails the run under CI=true; elsewhere
# it is a warning and the tests that need it skip.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${CI:-}" in 1 | true | TRUE | True | yes | YES) in_ci=1 ;; *) in_ci=0 ;; esac

die() {
    echo "test.sh: $*" >&2
    exit 1
}

missing() { # missing PART FIX
    if ((in_ci)); then
        die "$1 is required under CI=true and is not installed; $2"
    fi
    echo "test.sh: warning: $1 not found, the tests that need it will skip; $2" >&2
}

# -- system parts -------------------------------------------------------------------
apt_updated=0
apt_install() {
    [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1 || return 1
    if ((!apt_updated)); then
        apt-get update -qq || return 1
        apt_updated=1
    fi
    echo "test.sh: installing $* (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

have_pg() {
    [[ -n "${REVERSA_PG_BIN:-}" && -x "${REVERSA_PG_BIN}/initdb" ]] ||
        compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null ||
        command -v initdb >/dev/null 2>&1
}
if ! have_pg; then
    apt_install postgresql || true
    have_pg || missing "PostgreSQL server binaries (initdb, pg_ctl)" \
        "install Debian's 'postgresql' package or set REVERSA_PG_BIN to their directory"
fi

have_chromium() { command -v chromium >/dev/null 2>&1 && chromium --version >/dev/null 2>&1; }
if ! have_chromium; then
    apt_install chromium || true
    have_chromium || missing "chromium (for the browser tests)" "install Debian's 'chromium' package"
fi

if ! bash scripts/setup-anvil.sh >/dev/null; then
    if ! command -v npm >/dev/null 2>&1 && apt_install npm; then
        bash scripts/setup-anvil.sh >/dev/null || true
    fi
    bash scripts/setup-anvil.sh >/dev/null 2>&1 || missing "anvil" \
        "install npm, then run scripts/setup-anvil.sh (or set REVERSA_ANVIL to the binary)"
fi

# -- Python (after the system parts, so a run that must fail fails before installing) --
in_venv() { "$1" -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)' 2>/dev/null; }

if [[ -n "${VIRTUAL_ENV:-}" && -x "${VIRTUAL_ENV}/bin/python" ]]; then
    py="${VIRTUAL_ENV}/bin/python"
elif command -v python >/dev/null 2>&1 && in_venv python; then
    py="$(command -v python)"
else
    if [[ ! -x .venv/bin/python ]]; then
        base="$(command -v python3)" || die "python3 not found; install Python >= 3.11"
        "${base}" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
            die "${base} is $("${base}" -V 2>&1); Reversa needs Python >= 3.11"
        echo "test.sh: not in a virtual environment; creating ./.venv with ${base}"
        "${base}" -m venv .venv ||
            die "python3 -m venv failed; install the venv module (apt-get install python3-venv)"
    fi
    py="${PWD}/.venv/bin/python"
fi
# reversa, python and pip of that environment come first for everything started below.
PATH="$(dirname "${py}"):${PATH}"
export PATH

"${py}" -m pip install --quiet --disable-pip-version-check -e '.[all,dev]'

# Several test processes (pytest-xdist): much of the suite waits on child processes,
# servers and leases rather than computing, so three share two cores well. Work is
# stolen test by test, so one file of slow tests never leaves the others idle.
# REVERSA_TEST_WORKERS=0 runs in this process; a -n of your own wins (it comes last).
workers="${REVERSA_TEST_WORKERS:-3}"
if [[ "${workers}" == 0 ]]; then
    exec "${py}" -m pytest "$@"
fi
exec "${py}" -m pytest -n "${workers}" --dist worksteal "$@"
