"""Reading a YAML file with bounds, and with an error that says where it went wrong.

Shared by the tokenpulse config and the mock farm file: both must name the file, the place (field path,
or line and column) and the problem, and exit before anything starts. Each caller words the location
its own way.

Why bounds: a config is input, and a few hundred bytes of YAML can cost gigabytes (aliases of aliases,
the "billion laughs") or blow the stack (thousands of nested brackets). So a file is read only when it
is at most MAX_BYTES of UTF-8 without NUL characters, its nesting is at most MAX_DEPTH levels, and the
data, with every alias expanded, holds at most MAX_NODES values. A key given twice in one mapping is an
error too: YAML would silently keep the last one, so a typo'd override would win without a word.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

MAX_BYTES = 1 << 20
MAX_DEPTH = 64
MAX_NODES = 100_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlReadError(Exception):
    """The file cannot be read (`unreadable`) or is not acceptable YAML: `line`/`column` (1-based) when
    known, `path` (dotted field path, "" for the top) when the problem belongs to a field."""

    def __init__(self, problem: str, *, unreadable: bool = False, line: int | None = None,
                 column: int | None = None, path: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.unreadable = unreadable
        self.line = line
        self.column = column
        self.path = path


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that tracks the field path being composed, bounds the nesting depth and refuses
    duplicate keys (both found while composing, before any object is built)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._path: list[str] = []

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        if isinstance(index, ScalarNode):
            part = str(index.value)
        elif isinstance(index, int) and not isinstance(index, bool):
            part = str(index)
        else:
            part = "(key)" if parent is not None else ""
        self._path.append(part)
        try:
            if len(self._path) > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise YamlReadError(f"nested deeper than {MAX_DEPTH} levels", line=mark.line + 1,
                                    column=mark.column + 1, path=self.path())
            return super().compose_node(parent, index)  # type: ignore[return-value]
        finally:
            self._path.pop()

    def compose_mapping_node(self, anchor: Any) -> MappingNode:
        node: MappingNode = super().compose_mapping_node(anchor)
        seen: set[str] = set()
        for key, _ in node.value:
            if not isinstance(key, ScalarNode) or key.tag == _MERGE_TAG:
                continue
            if key.value in seen:
                path = self.path()
                raise YamlReadError(f"duplicate key {key.value!r}", line=key.start_mark.line + 1,
                                    column=key.start_mark.column + 1,
                                    path=f"{path}.{key.value}" if path else str(key.value))
            seen.add(key.value)
        return node

    def path(self) -> str:
        return ".".join(p for p in self._path if p)


def _check_expanded(data: Any) -> None:
    """Walk the data as a consumer would, aliases expanded, without recursion: at most MAX_NODES values
    (so the walk itself is bounded), and no NUL character in any key or string (a `"\\0"` escape)."""
    budget = MAX_NODES
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        value, path = stack.pop()
        budget -= 1
        if budget < 0:
            raise YamlReadError(f"the data holds more than {MAX_NODES} values once its aliases are "
                                "expanded", path="")
        if isinstance(value, str):
            if "\x00" in value:
                raise YamlReadError("NUL character in a string", path=path)
        elif isinstance(value, dict):
            for k, v in value.items():
                if isinstance(k, str) and "\x00" in k:
                    raise YamlReadError("NUL character in a key", path=path)
                stack.append((v, f"{path}.{k}" if path else str(k)))
        elif isinstance(value, list):
            stack.extend((v, f"{path}.{i}" if path else str(i)) for i, v in enumerate(value))


def parse_yaml(text: str) -> Any:
    """Parse YAML text within the bounds; YamlReadError on any failure."""
    nul = text.find("\x00")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        raise YamlReadError("NUL character in the file", line=line, column=nul - (text.rfind("\n", 0, nul) + 1) + 1)
    loader = _BoundedLoader(text)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise YamlReadError(str(getattr(exc, "problem", None) or exc),
                            line=mark.line + 1 if mark else None, column=mark.column + 1 if mark else None) from None
    finally:
        loader.dispose()
    _check_expanded(data)
    return data


def read_yaml(path: str | Path) -> Any:
    """Read and parse a file with `parse_yaml` (safe: no arbitrary objects); YamlReadError on any failure."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise YamlReadError(f"cannot read: {exc.strerror or exc}", unreadable=True) from None
    if len(raw) > MAX_BYTES:
        raise YamlReadError(f"larger than {MAX_BYTES // 1024} KiB; a config this big is a mistake", unreadable=True)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise YamlReadError(f"not UTF-8: byte 0x{raw[exc.start]:02x} at line {line} (offset {exc.start})",
                            unreadable=True) from None
    return parse_yaml(text.removeprefix("\ufeff"))
