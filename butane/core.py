"""The pipeline: YAML -> variant/version -> decode -> validate -> translate -> validate -> JSON."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .decode import decode_config
from .jsonout import dumps
from .report import ButaneError, Locations, Report
from .translate import Obj, Translator, merge_configs
from .validate import validate_generated, validate_source
from .yamlv3 import Node, YamlError

# fcos spec version -> Ignition spec version it produces
SUPPORTED_VERSIONS = {
    "1.0.0": "3.0.0",
    "1.1.0": "3.1.0",
    "1.2.0": "3.2.0",
    "1.3.0": "3.2.0",
    "1.4.0": "3.3.0",
    "1.5.0": "3.4.0",
    "1.6.0": "3.5.0",
    "1.7.0": "3.6.0",
    "1.8.0-experimental": "3.7.0-experimental",
}
SOURCE_INVALID = "source config is invalid"
GENERATED_INVALID = "config generated was invalid"
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$"
)


def _top_level_scalar(root: Node | None, key: str) -> str:
    if root is None or root.kind != "map":
        return ""
    for k, v in root.pairs:
        if k.kind == "scalar" and k.value == key:
            return "" if v.is_null or v.kind != "scalar" else v.value
    return ""


def _select_version(root: Node | None) -> tuple[str, int]:
    variant = _top_level_scalar(root, "variant")
    version = _top_level_scalar(root, "version")
    if not variant:
        raise ButaneError("error parsing variant; must be specified")
    if not _SEMVER.match(version):
        raise ButaneError("error parsing version; must be a valid semver")
    if variant != "fcos" or version not in SUPPORTED_VERSIONS:
        supported = ", ".join(SUPPORTED_VERSIONS)
        raise ButaneError(
            f"No translator exists for variant {variant} with version {version}"
            f" (this butane supports variant fcos with version {supported})"
        )
    return SUPPORTED_VERSIONS[version], int(version.split(".")[1])


def _prune(value: Any) -> Any:
    """Drop empty lists and empty objects, like Butane's JSON marshaller (omitempty)."""
    if isinstance(value, dict):
        for key in list(value):
            child = _prune(value[key])
            if (isinstance(child, (dict, list))) and not child:
                del value[key]
        return value
    if isinstance(value, list):
        for item in value:
            _prune(item)
        return value
    return value


def _load(text: str | bytes) -> Node | None:
    from . import yamlv3

    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ButaneError(f"Error unmarshaling yaml: yaml: invalid UTF-8 at byte {exc.start}") from None
    try:
        return yamlv3.load(text)
    except YamlError as exc:
        where = f" at line {exc.line} col {exc.col}" if exc.line else ""
        raise ButaneError(f"error{where}: {exc.message}") from None


def _apply_fcos_sugar(config: dict[str, Any], minor: int, ignition: Obj, report: Report) -> Obj:
    """boot_device and grub configs are merged in as parents of the user's config."""
    from .fcos import boot_device_config, grub_config, partition_warnings

    boot = boot_device_config(config, minor) if minor >= 3 else None
    if boot is not None:
        ignition = merge_configs(boot, ignition)
    if minor >= 3:
        partition_warnings(ignition, report, root_checks=minor >= 6)
    grub = grub_config(config) if minor >= 5 else None
    if grub is not None:
        ignition = merge_configs(grub, ignition)
    return ignition


def transpile(
    text: str | bytes,
    files_dir: str | Path | None = None,
    strict: bool = False,
    pretty: bool = False,
) -> tuple[str, list[str]]:
    """Translate a Butane config to Ignition JSON; returns (json_text, warning lines)."""
    root = _load(text)
    target, minor = _select_version(root)
    assert root is not None
    report = Report(Locations())
    config = decode_config(root, minor, report)

    from .fcos import validate_fcos, validate_fcos_storage

    validate_fcos_storage(config, minor, report)
    validate_source(config, report, minor, target)
    validate_fcos(config, minor, report)
    report.raise_if_fatal(SOURCE_INVALID)

    translator = Translator(minor, str(files_dir) if files_dir is not None else None, report)
    ignition = translator.translate(config, target)
    report.raise_if_fatal(SOURCE_INVALID)
    ignition = _apply_fcos_sugar(config, minor, ignition, report)

    _prune(ignition)
    if "ignition" not in ignition:
        ignition.put("ignition", Obj(("ignition",), version=target))
    validate_generated(ignition, minor, report)
    report.raise_if_fatal(GENERATED_INVALID)

    warnings = report.lines()
    if strict and warnings:
        raise ButaneError(f"{warnings[0]} (config produced warnings and strict was specified)", warnings,
                          "Config produced warnings and --strict was specified")
    return dumps(ignition, pretty=pretty), warnings
