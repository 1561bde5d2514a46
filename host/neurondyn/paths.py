"""Where the firmware sources and board profiles live (beside the host package)."""
from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent
REPO_ROOT = _PKG.parent.parent


def firmware_dir() -> Path:
    return REPO_ROOT / "firmware"


def boards_dir() -> Path:
    return REPO_ROOT / "boards"


def data_dir() -> Path:
    return _PKG / "data"
