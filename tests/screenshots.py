"""The README's screenshots (tests/test_report_browser.py, tests/test_service_browser.py).

With MARTEAU_SCREENSHOTS=1 they are saved into docs/, otherwise into the test's
temporary folder, so that a normal run leaves the tree alone. Those in docs/ are
stored as 256-colour PNGs: pages of flat colours look the same and the files
are about a third of the size (Pillow comes with matplotlib, the report's
dependency)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PIL import Image

DOCS = Path(__file__).resolve().parent.parent / "docs"


def folder(tmp_path: Path) -> Path:
    """Where the screenshots go: docs/ with MARTEAU_SCREENSHOTS=1, else `tmp_path`."""
    return DOCS if os.environ.get("MARTEAU_SCREENSHOTS") == "1" else tmp_path


def shoot(page: Any, tmp_path: Path, name: str, **options: Any) -> Path:
    """`page.screenshot` into `folder(tmp_path) / name`, made compact when in docs/."""
    path = folder(tmp_path) / name
    page.screenshot(path=str(path), **options)
    if path.parent == DOCS:
        with Image.open(path) as image:
            compact = image.convert("RGB").quantize(256, dither=Image.Dither.NONE)
        compact.save(path, optimize=True)
    return path
