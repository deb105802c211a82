"""YAML loading with gopkg.in/yaml.v3 semantics on top of PyYAML's composer.

PyYAML resolves scalars by YAML 1.1 rules (``0644`` is octal, ``yes`` is a bool,
``1.50`` becomes 1.5). Butane decodes with yaml.v3 into typed Go structs, where the
*target field type* decides how a scalar is read. So we only let PyYAML build the node
graph (with line/column marks) and resolve scalars ourselves in ``decode.py``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.resolver import BaseResolver

IMPLICIT = "!implicit"  # tag PyYAML gives untagged scalars with our resolver
STR_TAG = "tag:yaml.org,2002:str"
INT_TAG = "tag:yaml.org,2002:int"
BOOL_TAG = "tag:yaml.org,2002:bool"
FLOAT_TAG = "tag:yaml.org,2002:float"
NULL_TAG = "tag:yaml.org,2002:null"
MAP_TAG = "tag:yaml.org,2002:map"
SEQ_TAG = "tag:yaml.org,2002:seq"
MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlError(Exception):
    """A syntax or structure error, with a 1-based position."""

    def __init__(self, message: str, line: int = 0, col: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.col = col


class _NoImplicitResolver(BaseResolver):  # type: ignore[misc]  # PyYAML is untyped (Any)
    """Resolver that leaves every untagged scalar unresolved (tag ``!implicit``)."""

    DEFAULT_SCALAR_TAG = IMPLICIT
    yaml_implicit_resolvers: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
    yaml_path_resolvers: dict[tuple[object, ...], str] = {}


def _make_loader() -> type:
    # libyaml (PyYAML's C parser lives in yaml.cyaml; `yaml` itself does not export it): what
    # yaml.v3 was ported from, so the same error wording, and ten times faster than PyYAML's own.
    from yaml import cyaml

    parser_base: Any = getattr(cyaml, "CParser", None)
    if parser_base is not None:

        class CLoader(parser_base, _NoImplicitResolver):  # type: ignore[misc]  # CParser is untyped (Any)
            def __init__(self, stream: str) -> None:
                parser_base.__init__(self, stream)
                _NoImplicitResolver.__init__(self)

        return CLoader
    from yaml.composer import Composer
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class PyLoader(Reader, Scanner, Parser, Composer, _NoImplicitResolver):  # type: ignore[misc]  # untyped bases
        def __init__(self, stream: str) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)
            Composer.__init__(self)
            _NoImplicitResolver.__init__(self)

    return PyLoader


_Loader = _make_loader()


@dataclass(eq=False)
class Node:
    """One YAML node: ``kind`` is 'scalar', 'map' or 'seq'; positions are 1-based."""

    kind: str
    tag: str
    line: int
    col: int
    value: str = ""
    plain: bool = True  # scalar written without quotes or block indicator
    alias: bool = False  # a mapping reached through ``*alias`` (not its anchored original)
    items: list[Node] = field(default_factory=list)  # seq elements
    pairs: list[tuple[Node, Node]] = field(default_factory=list)  # map entries

    @property
    def is_null(self) -> bool:
        if self.kind != "scalar":
            return False
        if self.tag == NULL_TAG:
            return True
        return self.tag == IMPLICIT and self.plain and self.value in _NULLS

    @property
    def is_merge_key(self) -> bool:
        return self.kind == "scalar" and (
            self.tag == MERGE_TAG or (self.tag == IMPLICIT and self.plain and self.value == "<<")
        )


_NULLS = {"", "~", "null", "Null", "NULL"}


def _convert(pnode: yaml.Node, memo: dict[int, Node]) -> Node:
    known = memo.get(id(pnode))
    if known is not None:
        if known.kind == "map":
            # PyYAML hands back the anchored node itself; yaml.v3 keeps an alias node,
            # which Butane's position tree does not follow (it warns).
            return Node("map", known.tag, known.line, known.col, pairs=known.pairs, alias=True)
        return known
    mark = pnode.start_mark
    line, col = mark.line + 1, mark.column + 1
    if isinstance(pnode, yaml.ScalarNode):
        # a plain scalar's style: '' from libyaml, None from PyYAML's parser
        node = Node("scalar", pnode.tag, line, col, value=pnode.value, plain=not pnode.style)
        memo[id(pnode)] = node
        return node
    if isinstance(pnode, yaml.SequenceNode):
        node = Node("seq", pnode.tag, line, col)
        memo[id(pnode)] = node
        node.items = [_convert(child, memo) for child in pnode.value]
        return node
    node = Node("map", pnode.tag, line, col)
    memo[id(pnode)] = node
    node.pairs = [(_convert(k, memo), _convert(v, memo)) for k, v in pnode.value]
    _check_duplicate_keys(node)
    return node


def _check_duplicate_keys(node: Node) -> None:
    """yaml.v3 rejects a key that appears twice in one mapping."""
    seen: dict[str, int] = {}
    for key, _ in node.pairs:
        if key.kind != "scalar" or key.is_merge_key:
            continue
        if key.value in seen:
            raise YamlError(
                f'mapping key "{key.value}" already defined at line {seen[key.value]}', key.line, key.col
            )
        seen[key.value] = key.line


def load(text: str) -> Node | None:
    """Compose the first YAML document; None for an empty stream."""
    loader = None
    try:
        loader = _Loader(text)  # the pure-Python reader checks the characters here
        if not loader.check_node():
            return None
        pnode = loader.get_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        col = mark.column + 1 if mark else 0
        problem = exc.problem or exc.context or "syntax error"
        raise YamlError(f"yaml: line {line}: {problem}", line, col) from None
    except yaml.YAMLError as exc:
        raise YamlError(f"yaml: {str(exc).splitlines()[0]}") from None  # not its `in "<unicode string>"` line
    finally:
        try:
            if loader is not None:
                loader.dispose()
        except Exception:  # noqa: BLE001 - disposal is best effort
            pass
    if pnode is None:
        return None
    return _convert(pnode, {})


# ---------------------------------------------------------------- scalar resolution

_FLOAT_RE = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_INF = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"}
_NEG_INF = {"-.inf", "-.Inf", "-.INF"}
_NAN = {".nan", ".NaN", ".NAN"}


def go_parse_int(text: str) -> int | None:
    """strconv.ParseInt(text, 0, 64): sign, then 0x / 0o / 0b / leading-0 octal / decimal."""
    sign = 1
    body = text
    if body[:1] in "+-" and body:
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    if not body:
        return None
    lower = body.lower()
    digits, base = body, 10
    if lower.startswith("0x"):
        digits, base = body[2:], 16
    elif lower.startswith("0o"):
        digits, base = body[2:], 8
    elif lower.startswith("0b"):
        digits, base = body[2:], 2
    elif body.startswith("0") and len(body) > 1:
        digits, base = body[1:], 8
    allowed = "0123456789abcdef"[:base]
    if not digits or any(ch not in allowed for ch in digits.lower()):
        return None
    value = sign * int(digits, base)
    if not -(2**63) <= value < 2**63:
        return None
    return value


def resolve_plain(value: str) -> tuple[str, object]:
    """yaml.v3's resolve() for an untagged plain scalar: (short tag, value)."""
    if value in _NULLS:
        return "!!null", None
    if value in ("true", "True", "TRUE"):
        return "!!bool", True
    if value in ("false", "False", "FALSE"):
        return "!!bool", False
    if value in _INF:
        return "!!float", math.inf
    if value in _NEG_INF:
        return "!!float", -math.inf
    if value in _NAN:
        return "!!float", math.nan
    if value == "<<":
        return "!!merge", value
    if value[0] in "0123456789+-.":
        plain = value.replace("_", "")
        number = go_parse_int(plain)
        if number is not None:
            return "!!int", number
        if _FLOAT_RE.match(plain):
            return "!!float", float(plain)
    return "!!str", value


def resolve(node: Node) -> tuple[str, object]:
    """Short tag and value of a scalar node, as yaml.v3 would decode it."""
    if node.tag == IMPLICIT:
        if not node.plain:
            return "!!str", node.value
        return resolve_plain(node.value)
    tag = node.tag
    short = "!!" + tag[len("tag:yaml.org,2002:") :] if tag.startswith("tag:yaml.org,2002:") else tag
    if short == "!!str":
        return short, node.value
    if short in ("!!int", "!!bool", "!!float", "!!null"):
        kind, value = resolve_plain(node.value) if node.value else ("!!null", None)
        if kind == short or (short == "!!float" and kind == "!!int"):
            return short, value
        raise YamlError(f"cannot decode !!str `{node.value}` as a {short}", node.line, node.col)
    return short, node.value
