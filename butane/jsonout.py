"""Ignition JSON output with Go's encoding/json escaping and Ignition struct key order."""

from __future__ import annotations

import re
from typing import Any

# Node fields (embedded types.Node) come before the file/dir/link specific ones.
_NODE_FIRST = {"group": 0, "overwrite": 1, "path": 2, "user": 3}
_NODE_LISTS = {"files", "directories", "links"}
# Go field names whose spelling changes alphabetical order relative to the JSON key.
_GO_NAMES = {"sshAuthorizedKeys": "SSHAuthorizedKeys"}

_ESCAPE_RE = re.compile('["\\\\\x00-\x1f<>&\u2028\u2029]')
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(match: re.Match[str]) -> str:
    char = match.group(0)
    return _ESCAPES.get(char) or f"\\u{ord(char):04x}"


def go_string(text: str) -> str:
    return '"' + _ESCAPE_RE.sub(_escape_char, text) + '"'


def _go_name(key: str) -> str:
    return _GO_NAMES.get(key) or key[:1].upper() + key[1:]


def _ordered_keys(obj: dict[str, Any], node_object: bool) -> list[str]:
    if node_object:
        return sorted(obj, key=lambda k: (0, _NODE_FIRST[k]) if k in _NODE_FIRST else (1, _go_name(k)))
    return sorted(obj, key=_go_name)


def _write(value: Any, out: list[str], indent: str | None, level: int, node_object: bool = False) -> None:
    if isinstance(value, dict):
        keys = _ordered_keys(value, node_object)
        if not keys:
            out.append("{}")
            return
        out.append("{")
        for position, key in enumerate(keys):
            if position:
                out.append(",")
            if indent is not None:
                out.append("\n" + indent * (level + 1))
            out.append(go_string(key))
            out.append(": " if indent is not None else ":")
            child = value[key]
            if isinstance(child, list) and key in _NODE_LISTS:
                _write_list(child, out, indent, level + 1, node_items=True)
            else:
                _write(child, out, indent, level + 1)
        if indent is not None:
            out.append("\n" + indent * level)
        out.append("}")
    elif isinstance(value, list):
        _write_list(value, out, indent, level, node_items=False)
    elif isinstance(value, str):
        out.append(go_string(value))
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif value is None:
        out.append("null")
    else:
        out.append(str(int(value)))


def _write_list(items: list[Any], out: list[str], indent: str | None, level: int, node_items: bool) -> None:
    if not items:
        out.append("[]")
        return
    out.append("[")
    for position, item in enumerate(items):
        if position:
            out.append(",")
        if indent is not None:
            out.append("\n" + indent * (level + 1))
        _write(item, out, indent, level + 1, node_object=node_items)
    if indent is not None:
        out.append("\n" + indent * level)
    out.append("]")


def dumps(config: dict[str, Any], pretty: bool = False) -> str:
    out: list[str] = []
    _write(config, out, "  " if pretty else None, 0)
    return "".join(out)
