"""Shared helpers for codedance's own tests (the public fixtures live in codedance.testing)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def write_plugin(tmp_path: Path) -> Callable[[str, str], Path]:
    """``write_plugin("name.py", source)``: write a plugin file under tmp_path."""

    def write(filename: str, source: str) -> Path:
        path = tmp_path / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
        return path

    return write
