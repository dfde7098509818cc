"""docs/console.md shows a picture of every main page, and each picture is there."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "console.md"
MAIN_PAGES = {"overview", "sagas", "saga", "escalations", "escalation", "approval", "audit"}


def test_every_main_page_has_a_screenshot_that_exists() -> None:
    pictures = re.findall(r"!\[[^\]]*\]\((img/console/([\w-]+)\.png)\)", DOC.read_text())
    assert {name for _, name in pictures} >= MAIN_PAGES
    for path, _ in pictures:
        data = (DOC.parent / path).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n"), path
