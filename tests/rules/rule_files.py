"""Helpers for the rule-file tests: write YAML files and find the line of a snippet."""

from __future__ import annotations

import textwrap
from pathlib import Path


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def line_of(path: Path, snippet: str) -> int:
    """The 1-based line of the first occurrence of ``snippet`` in the file."""
    text = path.read_text(encoding="utf-8")
    index = text.index(snippet)
    return text.count("\n", 0, index) + 1


def where(path: Path, snippet: str) -> str:
    """``file:line`` of ``snippet``, as problems are reported."""
    return f"{path}:{line_of(path, snippet)}"
