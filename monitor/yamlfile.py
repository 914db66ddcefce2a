"""Reading a YAML file with an error that says where it went wrong.

Shared by the tokenpulse config and the mock farm file: both must name the file, the line and column
and the problem, and exit before anything starts. Each caller words the location its own way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class YamlReadError(Exception):
    """The file cannot be read (`unreadable`) or is not YAML (`line`/`column` when known, 1-based)."""

    def __init__(self, problem: str, *, unreadable: bool = False, line: int | None = None,
                 column: int | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.unreadable = unreadable
        self.line = line
        self.column = column


def read_yaml(path: str | Path) -> Any:
    """Parse with `yaml.safe_load` (no arbitrary objects); YamlReadError on any failure."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise YamlReadError(f"cannot read: {exc.strerror or exc}", unreadable=True) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise YamlReadError(str(getattr(exc, "problem", None) or exc),
                            line=mark.line + 1 if mark else None, column=mark.column + 1 if mark else None) from None
