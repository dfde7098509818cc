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
    db_url = os.environ.get("REVERSA_DB",
                            f"sqlite:///{tempfile.mkdtemp(prefix='reversa-evm-')}/reversa.db")
    console = Console(width=120)
    codes = [DEMOS[name](db_url, console) for name in ("evm-pending-replacement", "evm-reorg")]
    return max(codes)


if __name__ == "__main__":
    raise SystemExit(main())
