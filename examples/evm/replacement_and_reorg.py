"""Two chain hazards: a pending transaction cancelled by replacement, and a reorg.

Runs the ``reversa demo`` scenarios ``evm-pending-replacement`` and
``evm-reorg`` against a temporary store and prints their narrative.

Run: python examples/evm/replacement_and_reorg.py
"""

from __future__ import annotations

import os
import tempfile

from rich.console import Console

from reversa.demos.evm.demos import DEMOS


def main() -> int:
    # The record goes in a folder removed on exit (also on error) unless REVERSA_DB is set.
    with tempfile.TemporaryDirectory(prefix="reversa-evm-") as workdir:
        db_url = os.environ.get("REVERSA_DB", f"sqlite:///{workdir}/reversa.db")
        console = Console(width=120)
        runs = [DEMOS[name](db_url, console)
                for name in ("evm-pending-replacement", "evm-reorg")]
    return max(run.code for run in runs)


if __name__ == "__main__":
    raise SystemExit(main())
