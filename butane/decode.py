"""Decode a YAML node tree into plain dicts following the versioned Butane schema.

Mirrors yaml.v3 decoding into Go structs: the target type picks the scalar reading,
type mismatches are hard errors, unknown keys become ``unused key`` warnings, and
only keys actually present (non-null) end up in the result, so "explicitly false"
stays distinguishable from "absent".
"""

from __future__ import annotations

import math
from typing import Any

from .report import ButaneError, Locations, Path, Report, path_text
from .schema import BASE_PACKAGE, schema_for
from .yamlv3 import Node, YamlError, resolve

_YAML11_TRUE = {"y", "Y", "yes", "Yes", "YES", "on", "On", "ON"}
_YAML11_FALSE = {"n", "N", "no", "No", "NO", "off", "Off", "OFF"}

ABSENT = object()


class _Decoder:
    def __init__(self, minor: int, report: Report) -> None:
        self.schema = schema_for(minor)
        self.package = BASE_PACKAGE[minor]
        self.report = report
        self.locs: Locations = report.locations

    # ---- errors
    def _go_type(self, typ: str) -> str:
        if typ.startswith("["):
            return "[]" + self._go_type(typ[1:-1])
        if typ == "str":
            return "string"
        if typ in ("int", "bool"):
            return typ
        return f"{self.package}.{typ}"

    def _mismatch(self, node: Node, typ: str, path: Path) -> ButaneError:
        if node.kind == "map":
            shown = "!!map"
        elif node.kind == "seq":
            shown = "!!seq"
        else:
            try:
                tag, _ = resolve(node)
            except YamlError:
                tag = node.tag
            value = node.value if len(node.value) <= 10 else node.value[:7] + "..."
            shown = f"{tag} `{value}`"
        message = f"cannot unmarshal {shown} into {self._go_type(typ)}"
        return ButaneError(f"error at {path_text(path)}, line {node.line} col {node.col}: {message}")

    def _context_mismatch(self, path: Path) -> None:
        self.report.add(
            "warning",
            None,
            f"context tree does not match content tree at {path_text(path)}. Line and column "
            "reporting may be inconsistent. Unused keys may not be reported.",
        )

    # ---- decoding
    def decode(self, node: Node, typ: str, path: Path) -> Any:
        """Return the decoded value, or ABSENT for null."""
        self.locs.values[path] = (node.line, node.col)
        if node.is_null:
            if typ in self.schema and node.plain:
                # vcontext's tree has a map here but the document has none
                self._context_mismatch(path)
            return ABSENT
        if node.alias and typ in self.schema:
            # decoded like the anchored mapping, but Butane's position tree stops at the alias
            self._context_mismatch(path)
        if typ.startswith("["):
            return self._decode_list(node, typ, path)
        if typ in self.schema:
            return self._decode_struct(node, typ, path)
        if node.kind != "scalar":
            raise self._mismatch(node, typ, path)
        try:
            tag, value = resolve(node)
        except YamlError as exc:
            raise ButaneError(f"error at {path_text(path)}, line {exc.line} col {exc.col}: {exc.message}") from None
        if typ == "str":
            if tag == "!!binary":
                import base64
                import binascii

                try:
                    return base64.b64decode("".join(node.value.split())).decode("utf-8", errors="replace")
                except (binascii.Error, ValueError):
                    raise ButaneError(f"error at {path_text(path)}, line {node.line} col {node.col}: "
                                      "!!binary value contains invalid base64 data") from None
            return node.value
        if typ == "int":
            if tag == "!!int":
                return value
            if tag == "!!float" and isinstance(value, float) and math.isfinite(value) and abs(value) < 2**63:
                return int(value)  # yaml.v3 accepts floats into int fields
            raise self._mismatch(node, typ, path)
        if typ == "bool":
            if tag == "!!bool":
                return value
            if tag == "!!str" and value in _YAML11_TRUE:
                return True
            if tag == "!!str" and value in _YAML11_FALSE:
                return False
            raise self._mismatch(node, typ, path)
        raise AssertionError(typ)

    def _decode_list(self, node: Node, typ: str, path: Path) -> Any:
        if node.kind != "seq":
            raise self._mismatch(node, typ, path)
        inner = typ[1:-1]
        out = []
        for index, item in enumerate(node.items):
            value = self.decode(item, inner, path + (index,))
            if value is ABSENT:
                # Butane drops null elements (a null mapping also warns, in decode())
                continue
            out.append(value)
        return out

    def _merged_pairs(self, node: Node) -> list[tuple[Node, Node, bool]]:
        """Own pairs plus pairs pulled in by ``<<`` merge keys (own keys win)."""
        own = [(k, v, False) for k, v in node.pairs if not k.is_merge_key]
        own_keys = {k.value for k, _, _ in own if k.kind == "scalar"}
        merged: list[tuple[Node, Node, bool]] = []
        for key, value in node.pairs:
            if not key.is_merge_key:
                continue
            sources = value.items if value.kind == "seq" else [value]
            for source in sources:
                if source.kind != "map":
                    continue
                for mk, mv, _ in self._merged_pairs(source):
                    if mk.value not in own_keys:
                        own_keys.add(mk.value)
                        merged.append((mk, mv, True))
        return own + merged

    def _decode_struct(self, node: Node, typ: str, path: Path) -> Any:
        if node.kind != "map":
            raise self._mismatch(node, typ, path)
        fields = self.schema[typ]
        out: dict[str, Any] = {}
        for key, _ in node.pairs:
            if key.is_merge_key:
                self.locs.keys[path + ("<<",)] = (key.line, key.col)
                self.locs.values.setdefault(path + ("<<",), (key.line, key.col))
                self.report.warn(path + ("<<",), "unused key <<")
        for key, value, from_merge in self._merged_pairs(node):
            name = key.value if key.kind == "scalar" else ""
            child = path + (name,)
            if name not in fields:
                if not from_merge:
                    self.locs.values.setdefault(child, (key.line, key.col))
                    self.report.add("warning", child, f"unused key {name}", (key.line, key.col))
                continue
            self.locs.keys[child] = (key.line, key.col)
            decoded = self.decode(value, fields[name], child)
            if decoded is not ABSENT:
                out[name] = decoded
        # keep document order irrelevant: order fields by schema
        return {k: out[k] for k in fields if k in out}


def decode_config(root: Node, minor: int, report: Report) -> dict[str, Any]:
    decoder = _Decoder(minor, report)
    value = decoder.decode(root, "Config", ())
    return {} if value is ABSENT else value
