#!/usr/bin/env bash
# Install anvil (Foundry's local Ethereum node) from the npm package @foundry-rs/anvil into
# .tools/anvil of this checkout, so the EVM integration tests can start real nodes.
# Idempotent: when the binary is already there it only prints its path.
# Usage: scripts/setup-anvil.sh            -> prints the absolute path of the anvil binary
set -euo pipefail

ANVIL_VERSION="${ANVIL_VERSION:-1.7.1}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="${ROOT}/.tools/anvil"

find_binary() {
    # The npm package ships a launcher in node_modules/.bin and the native binary in a
    # platform package; prefer the native binary so tests do not pay node's start-up time.
    local candidate
    for candidate in \
        "${PREFIX}"/node_modules/@foundry-rs/anvil-*/bin/anvil \
        "${PREFIX}"/node_modules/@foundry-rs/anvil/bin/anvil \
        "${PREFIX}/node_modules/.bin/anvil"; do
        if [[ -x "${candidate}" ]] && [[ -f "${candidate}" ]] && "${candidate}" --version >/dev/null 2>&1; then
            echo "${candidate}"
            return 0
        fi
    done
    return 1
}

if path="$(find_binary)"; then
    echo "${path}"
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "setup-anvil: npm is required (apt-get install -y npm)" >&2
    exit 1
fi

mkdir -p "${PREFIX}"
# --prefix keeps the install inside the checkout; --no-save/--no-package-lock leave no
# manifest behind. Output goes to stderr so stdout carries only the binary path.
npm install --silent --no-audit --no-fund --no-save --no-package-lock \
    --prefix "${PREFIX}" "@foundry-rs/anvil@${ANVIL_VERSION}" >&2

if path="$(find_binary)"; then
    echo "${path}"
    exit 0
fi
echo "setup-anvil: installed @foundry-rs/anvil@${ANVIL_VERSION} but found no runnable anvil under ${PREFIX}" >&2
exit 1
