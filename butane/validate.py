"""Validation: Butane source rules (before translation) and Ignition's rules (after)."""

from __future__ import annotations

import json
import posixpath
import re
from typing import Any
from urllib.parse import urlsplit

from .report import Path, Report
from .translate import Obj

# ------------------------------------------------------------------ source (Butane)

ERR_TOO_MANY_SOURCES = "only one of the following can be set: inline, local, source"
ERR_TOO_MANY_UNIT_SOURCES = "only one of the following can be set: contents, contents_local"
WARN_SPECIAL_BITS_BEFORE_3_6 = (
    "setuid/setgid/sticky bits are not supported or functional in spec versions older than 3.6.0"
)
WARN_OTHER_IGNITION_VERSION = "skipping validation for the merge/replace ignition config due to an unkown version"
# Butane's wording of these two quadlet errors could not be read; the checks are Butane's.
ERR_QUADLET_EXTENSION = (
    "invalid quadlet extension; must be one of .container, .volume, .network, .kube, .image, .build, .pod, .artifact"
)
ERR_QUADLET_TEMPLATE_CONTENTS = "a quadlet template instance is a link to its template and cannot have contents"
WARN_DECIMAL_MODE = (
    "unreasonable mode would be reasonable if specified in octal; remember to add a leading zero"
)


def _is_typical_mode(mode: int, directory: bool) -> bool:
    """Butane's heuristic for modes a human plausibly meant (base/util/file.go)."""
    if mode == 0:
        return True  # root ignores mode bits anyway
    had_r = had_w = had_x = False
    for perm in (mode & 0o7, (mode >> 3) & 0o7, (mode >> 6) & 0o7):  # other, group, user
        r, w, x = bool(perm & 4), bool(perm & 2), bool(perm & 1)
        # a more specific class has every bit of the less specific ones
        if (had_r and not r) or (had_w and not w) or (had_x and not x):
            return False
        # executable here but a less specific class could read without executing
        if x and had_r and not had_x:
            return False
        if (w or x) and not r:
            return False
        had_r, had_w, had_x = had_r or r, had_w or w, had_x or x
    if not had_r:
        return False
    if directory:
        if not had_x or mode & 0o4000:
            return False
        if mode & 0o3000 and not had_w:
            return False
    else:
        if mode & 0o6000 and (not had_x or mode & 0o2):
            return False
        if mode & 0o1000:
            return False
    return True


def decimal_mode_warning(mode: int, directory: bool) -> bool:
    """True when ``mode`` looks like octal digits written without the leading zero."""
    text = str(mode)
    if mode < 0 or mode > 7777 or any(ch not in "01234567" for ch in text):
        return False
    if _is_typical_mode(mode, directory):
        return False
    return _is_typical_mode(int(text, 8), directory)


def _resource_sources(resource: dict[str, Any], path: Path, report: Report) -> None:
    present = [key for key in ("local", "inline", "source") if key in resource]
    if len(present) > 1:
        report.error(path + (present[-1],), ERR_TOO_MANY_SOURCES)


def _inline_ignition_config(resource: dict[str, Any], path: Path, target: str, report: Report) -> None:
    """fcos 1.7.0+: an inline merge/replace config must parse as Ignition JSON (base/v0_7+).

    Butane reads it with the target spec's types; one of another spec version is only warned
    about, not validated further. Ignition's own checks on its contents are not repeated here.
    """
    text = resource.get("inline")
    if text is None or len([key for key in ("local", "inline", "source") if key in resource]) > 1:
        return
    if not text.strip():
        report.error(path + ("inline",), "not a config (empty)")
        return
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        report.error(path + ("inline",), f"config is not valid: {exc.msg} (line {exc.lineno} col {exc.colno})")
        return
    version = parsed.get("ignition", {}).get("version") if isinstance(parsed, dict) else None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("ignition", {}), dict):
        report.error(path + ("inline",), "config is not valid")
    elif not isinstance(version, str) or not re.fullmatch(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?", version):
        report.error(path + ("inline",), "invalid config version (couldn't parse)")
    elif version != target:
        report.warn(path + ("version",), WARN_OTHER_IGNITION_VERSION)


def _quadlet(quadlet: dict[str, Any], path: Path, report: Report) -> None:
    """fcos 1.8.0-experimental quadlets: a podman-systemd extension; a template instance
    (``web@8080.container``) becomes a link to its template, so it takes no contents."""
    from .translate import QUADLET_EXTENSIONS, quadlet_template

    name = quadlet.get("name", "")
    if not name.endswith(QUADLET_EXTENSIONS):
        report.error(path + ("name",), ERR_QUADLET_EXTENSION)
        return
    if quadlet_template(name) is not None:
        for key in ("contents", "contents_local"):
            if key in quadlet:
                report.error(path + (key,), ERR_QUADLET_TEMPLATE_CONTENTS)
    elif "contents" in quadlet and "contents_local" in quadlet:
        report.error(path + ("contents_local",), ERR_TOO_MANY_UNIT_SOURCES)


def validate_source(config: dict[str, Any], report: Report, minor: int = 0, target: str = "") -> None:
    ignition = config.get("ignition", {})
    cfg = ignition.get("config", {})
    for index, res in enumerate(cfg.get("merge", [])):
        _resource_sources(res, ("ignition", "config", "merge", index), report)
        if minor >= 7:
            _inline_ignition_config(res, ("ignition", "config", "merge", index), target, report)
    if "replace" in cfg:
        _resource_sources(cfg["replace"], ("ignition", "config", "replace"), report)
        if minor >= 7:
            _inline_ignition_config(cfg["replace"], ("ignition", "config", "replace"), target, report)
    for index, res in enumerate(ignition.get("security", {}).get("tls", {}).get("certificate_authorities", [])):
        _resource_sources(res, ("ignition", "security", "tls", "certificate_authorities", index), report)
    storage = config.get("storage", {})
    for index, directory in enumerate(storage.get("directories", [])):
        if "mode" in directory and decimal_mode_warning(directory["mode"], True):
            report.warn(("storage", "directories", index, "mode"), WARN_DECIMAL_MODE)
    for index, file in enumerate(storage.get("files", [])):
        base: Path = ("storage", "files", index)
        if "contents" in file:
            _resource_sources(file["contents"], base + ("contents",), report)
        for app_index, res in enumerate(file.get("append", [])):
            _resource_sources(res, base + ("append", app_index), report)
        if "mode" in file and decimal_mode_warning(file["mode"], False):
            report.warn(base + ("mode",), WARN_DECIMAL_MODE)
    for index, fs in enumerate(storage.get("filesystems", [])):
        base = ("storage", "filesystems", index)
        if fs.get("with_mount_unit") is True:
            if not fs.get("format"):
                report.error(base + ("format",), "format is required if with_mount_unit is true")
            elif fs["format"] != "swap" and not fs.get("path"):
                report.error(base + ("path",), "path is required if with_mount_unit is true and format is not swap")
    for index, luks in enumerate(storage.get("luks", [])):
        if "key_file" in luks:
            _resource_sources(luks["key_file"], ("storage", "luks", index, "key_file"), report)
    for index, tree in enumerate(storage.get("trees", [])):
        if not tree.get("local"):
            report.error(("storage", "trees", index), "local is required")
    for index, quadlet in enumerate(config.get("systemd", {}).get("quadlets", [])):
        _quadlet(quadlet, ("systemd", "quadlets", index), report)
    for index, unit in enumerate(config.get("systemd", {}).get("units", [])):
        base = ("systemd", "units", index)
        if "contents" in unit and "contents_local" in unit:
            report.error(base + ("contents_local",), ERR_TOO_MANY_UNIT_SOURCES)
        for d_index, dropin in enumerate(unit.get("dropins", [])):
            if "contents" in dropin and "contents_local" in dropin:
                report.error(base + ("dropins", d_index, "contents_local"), ERR_TOO_MANY_UNIT_SOURCES)


# ------------------------------------------------------------------ generated (Ignition)

_GUID_RE = re.compile(r"^(|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$")
_FS_LABEL_LIMITS = {"ext4": (16, "ext4"), "btrfs": (256, "btrfs"), "xfs": (12, "xfs"), "swap": (15, "swap"),
                    "vfat": (11, "vfat")}
UNIT_EXTENSIONS = (
    ".service", ".socket", ".device", ".mount", ".automount", ".swap", ".target",
    ".path", ".timer", ".snapshot", ".slice", ".scope",
)
FS_FORMATS_BY_MINOR = {"ext4", "btrfs", "xfs", "vfat", "swap"}
URL_SCHEMES = {"http", "https", "tftp", "s3", "gs", "data"}


class _Checker:
    def __init__(self, minor: int, report: Report) -> None:
        self.minor = minor
        self.report = report

    def error(self, obj: dict[str, Any], key: str | None, message: str) -> None:
        self.report.error(obj.origin(key) if isinstance(obj, Obj) else (), message)

    def warn(self, obj: dict[str, Any], key: str | None, message: str) -> None:
        self.report.warn(obj.origin(key) if isinstance(obj, Obj) else (), message)

    # ---- resources
    def resource(self, res: Obj, http_headers_allowed: bool = True) -> None:
        compression = res.get("compression")
        if compression not in (None, "", "gzip"):
            self.error(res, "compression", "invalid compression method")
        source = res.get("source")
        if source is not None:
            self.url(res, source)
        verification = res.get("verification")
        if verification and verification.get("hash") is not None:
            if source is None:
                self.error(verification, "hash", "source must be specified if verification is specified")
            self.hash(verification, verification["hash"])
        headers = res.get("httpHeaders") or []
        if headers:
            scheme = urlsplit(source).scheme if source else ""
            if scheme not in ("http", "https"):
                self.error(res, "httpHeaders", "cannot use HTTP headers with this source scheme")
            seen: set[str] = set()
            for header in headers:
                name = header.get("name", "")
                if not name:
                    self.error(header, "name", "HTTP header name can't be empty")
                elif name in seen:
                    self.error(header, None, "duplicate entry defined")
                seen.add(name)

    def url(self, res: Obj, source: str) -> None:
        if source == "":
            return
        try:
            parts = urlsplit(source)
        except ValueError:
            self.error(res, "source", "unable to parse url")
            return
        schemes = set(URL_SCHEMES)
        if self.minor >= 5:
            schemes.add("arn")
        if self.minor < 2:
            schemes.discard("gs")
        if parts.scheme not in schemes:
            self.error(res, "source", "invalid url scheme")
            return
        if parts.scheme == "data" and "," not in source:
            self.error(res, "source", "invalid data url")

    def hash(self, verification: Obj, value: str) -> None:
        function, dash, digest = value.partition("-")
        if not dash:
            self.error(verification, "hash", "malformed hash specifier")
            return
        sizes = {"sha512": 128}
        if self.minor >= 1:
            sizes["sha256"] = 64
        if function not in sizes:
            self.error(verification, "hash", "unrecognized hash function")
        elif len(digest) != sizes[function] or not re.fullmatch(r"[0-9a-fA-F]*", digest):
            self.error(verification, "hash", "incorrect size for hash sum")

    # ---- nodes
    def node_path(self, node: Obj) -> None:
        path = node.get("path", "")
        if path == "":
            self.error(node, "path", "path not specified")
        elif not path.startswith("/"):
            self.error(node, "path", "path not absolute")
        elif posixpath.normpath(path) != path or path.startswith("//"):
            self.error(node, "path", "path is not fully simplified")

    def owner(self, node: Obj) -> None:
        for key in ("user", "group"):
            who = node.get(key)
            if who and "id" in who and "name" in who:
                self.error(who, "id", "cannot set both id and name")

    def mode(self, node: Obj) -> None:
        mode = node.get("mode")
        if mode is not None and not 0 <= mode <= 0o7777:
            self.error(node, "mode", "illegal file mode")
        elif mode is not None and mode & 0o7000 and self.minor <= 6:
            # Ignition as vendored by Butane v0.29.0 applies these bits only from spec 3.6.0
            # (fcos 1.7.0); its older text said 3.4.0 and warned for specs before that only
            self.warn(node, "mode", WARN_SPECIAL_BITS_BEFORE_3_6)

    def storage(self, storage: Obj) -> None:
        seen: dict[str, bool] = {}
        for kind in ("directories", "files", "links"):
            for node in storage.get(kind, []):
                path = node.get("path", "")
                if path in seen:
                    self.error(node, None, "duplicate entry defined")
                seen[path] = True
        self.paths_through_links(storage)
        for directory in storage.get("directories", []):
            self.node_path(directory)
            self.owner(directory)
            self.mode(directory)
        for file in storage.get("files", []):
            self.node_path(file)
            self.owner(file)
            self.mode(file)
            contents = file.get("contents")
            if contents:
                self.resource(contents)
            for res in file.get("append", []):
                self.resource(res)
            if file.get("overwrite") is True and not (contents and contents.get("source")):
                self.error(file, "overwrite", "overwrite must be false if source is unspecified")
        for link in storage.get("links", []):
            self.node_path(link)
            self.owner(link)
            if self.minor >= 5 and not link.get("target"):
                self.error(link, "target", "link target is required")
            if link.get("hard") is True and (link.get("user") or link.get("group")):
                self.warn(link, "hard", "user/group ignored for hard link")
        self.filesystems(storage)
        self.disks(storage)
        self.named_unique(storage.get("luks", []))
        self.named_unique(storage.get("raid", []))
        for luks in storage.get("luks", []):
            if luks.get("keyFile"):
                self.resource(luks["keyFile"])
            if "/" in luks.get("name", ""):
                self.error(luks, "name", "device names cannot contain slashes")
            if len(luks.get("label") or "") > 47:
                self.error(luks, "label", "luks device labels cannot be longer than 47 characters")
            custom = (luks.get("clevis") or {}).get("custom") or {}
            if custom:
                if not custom.get("pin"):
                    self.error(custom, "pin", "missing required custom clevis pin")
                elif custom["pin"] not in ("tpm2", "tang", "sss"):
                    self.error(custom, "pin", "unsupported clevis pin")
                if not custom.get("config"):
                    self.error(custom, "config", "missing required custom clevis config")
            clevis = luks.get("clevis") or {}
            for tang in clevis.get("tang", []):
                self.tang(tang)
            if clevis.get("custom") and (clevis.get("tpm2") is True or clevis.get("tang") or
                                         clevis.get("threshold", 0) > 0):
                self.error(clevis, "custom", "cannot use custom clevis config with tpm2, tang, or threshold")
        for raid in storage.get("raid", []):
            levels = {"linear", "raid0", "0", "stripe", "raid1", "1", "mirror", "raid4", "4",
                      "raid5", "5", "raid6", "6", "raid10", "10"}
            level = raid.get("level")
            if level is not None and level not in levels and not (self.minor >= 6 and level == ""):
                self.error(raid, "level", "unrecognized raid level")
            if raid.get("spares", 0) > 0 and level in ("linear", "raid0", "0", "stripe"):
                self.error(raid, "spares", "spares unsupported for linear and raid0 arrays")

    def tang(self, tang: Obj) -> None:
        url = tang.get("url", "")
        try:
            scheme = urlsplit(url).scheme
        except ValueError:
            self.error(tang, "url", "unable to parse url")
        else:
            if scheme not in ("http", "https"):
                self.error(tang, "url", "invalid url scheme")
        if not tang.get("thumbprint"):
            self.error(tang, "thumbprint", "thumbprint is required")
        advertisement = tang.get("advertisement")
        if advertisement:
            try:
                json.loads(advertisement)
            except ValueError:
                self.error(tang, "advertisement", "advertisement is not valid JSON")

    def paths_through_links(self, storage: Obj) -> None:
        """A file, directory or link may not live below a path that is itself a link."""
        link_paths = [link.get("path", "") for link in storage.get("links", [])]
        messages = {"directories": "directory path includes link in config",
                    "files": "file path includes link in config",
                    "links": "link path includes link in config"}
        for kind in ("directories", "files", "links"):
            for node in storage.get(kind, []):
                path = node.get("path", "")
                if any(path.startswith(link.rstrip("/") + "/") for link in link_paths if link):
                    self.error(node, None, messages[kind])

    def filesystems(self, storage: Obj) -> None:
        formats = set(FS_FORMATS_BY_MINOR)
        if self.minor >= 4:
            formats.add("none")
        for fs in storage.get("filesystems", []):
            fmt = fs.get("format")
            if fmt is not None and fmt != "" and fmt not in formats:
                self.error(fs, "format", "invalid filesystem format")
            path = fs.get("path")
            if path:
                if not path.startswith("/"):
                    self.error(fs, "path", "path not absolute")
                elif posixpath.normpath(path) != path:
                    self.error(fs, "path", "path is not fully simplified")
            if not fmt and any(fs.get(k) not in (None, [], "") for k in
                               ("path", "label", "uuid", "wipeFilesystem", "options", "mountOptions")):
                self.error(fs, "format", "format cannot be empty when path, label, uuid, wipeFilesystem, options, "
                           "or mountOptions is specified")
            label = fs.get("label")
            limit = _FS_LABEL_LIMITS.get(fmt or "")
            if label and limit and len(label) > limit[0]:
                self.error(fs, "label",
                           f"filesystem labels cannot be longer than {limit[0]} characters when using {limit[1]}")
        self.keyed_unique(storage.get("filesystems", []), "device")

    def disks(self, storage: Obj) -> None:
        """Ignition's Disk.Validate (disk-level checks), then each partition's own checks."""
        for disk in storage.get("disks", []):
            device = disk.get("device")
            if not device:
                self.error(disk, "device", "disk device is required")
                continue
            if not device.startswith("/"):
                self.error(disk, "device", "path not absolute")
            parts: list[Obj] = disk.get("partitions", [])
            first_of: dict[int, int] = {}
            for index, part in enumerate(parts):
                number = part.get("number", 0)
                if number and number in first_of:
                    self.error(part, None, "partition numbers collide")
                    break
                first_of.setdefault(number, index)
            overlapping = _overlapping_partition(parts)
            if overlapping is not None:
                self.error(parts[overlapping], None, "partitions overlap")
            if any(part.get("shouldExist") is False for part in parts) and any(
                    not part.get("number") for part in parts):
                self.report.error(disk.origin("partitions"),
                                  "shouldExist is false for a partition and other partition(s) has start or size 0")
            labels: set[str] = set()
            for part in parts:
                label = part.get("label")
                if label is not None and label in labels:
                    self.error(part, None, "cannot use the same partition label twice")
                    break
                if label is not None:
                    labels.add(label)
            for part in parts:
                self.partition(part)
        self.keyed_unique(storage.get("disks", []), "device")

    def partition(self, part: Obj) -> None:
        if part.get("shouldExist") is False and any(
                k in part for k in ("label", "typeGuid", "guid", "startMiB", "sizeMiB")):
            self.error(part, None, "shouldExist specified false with other options also specified")
        if not part.get("number") and "label" not in part:
            self.error(part, None, "a partition number >= 1 or a label must be specified")
        label = part.get("label")
        if label:
            if len(label) > 36:
                self.error(part, "label", "partition labels may not exceed 36 characters")
            if ":" in label:
                self.warn(part, "label", "partition label will be truncated to text before the colon")
        for key in ("guid", "typeGuid"):
            value = part.get(key)
            if value and not _GUID_RE.match(value):
                self.error(part, key, 'doesn\'t match the form "01234567-89AB-CDEF-EDCB-A98765432101"')

    def keyed_unique(self, items: list[Obj], key: str) -> None:
        seen: set[Any] = set()
        for item in items:
            ident = item.get(key)
            if ident in seen:
                self.error(item, None, "duplicate entry defined")
            seen.add(ident)

    def named_unique(self, items: list[Obj]) -> None:
        self.keyed_unique(items, "name")

    # ---- systemd
    def systemd(self, systemd: Obj) -> None:
        units = systemd.get("units", [])
        self.named_unique(units)
        for unit in units:
            name = unit.get("name", "")
            if not name.endswith(UNIT_EXTENSIONS):
                self.error(unit, "name", "invalid systemd unit extension")
            contents = unit.get("contents")
            options: list[tuple[str | None, str]] | None = None
            if contents is not None:
                parsed = parse_unit(contents)
                if isinstance(parsed, str):
                    self.error(unit, "contents", f"invalid unit content: {parsed}")
                else:
                    options = parsed
            dropins = unit.get("dropins", [])
            self.named_unique(dropins)
            for dropin in dropins:
                if not dropin.get("name", "").endswith(".conf"):
                    self.error(dropin, "name", "invalid systemd drop-in extension")
                if dropin.get("contents") is not None:
                    problem = parse_unit(dropin["contents"])
                    if isinstance(problem, str):
                        self.error(dropin, "contents", f"invalid unit content: {problem}")
            if unit.get("enabled") is True and options is not None:
                if not any(section == "Install" for section, _ in options):
                    self.warn(
                        unit, "enabled", f'unit "{name}" is enabled, but has no install section so enable does nothing'
                    )

    # ---- passwd / kargs
    def passwd(self, passwd: Obj) -> None:
        self.named_unique(passwd.get("users", []))
        self.named_unique(passwd.get("groups", []))

    def kernel_arguments(self, kargs: Obj) -> None:
        # shouldExist and shouldNotExist share one duplicate namespace in Ignition
        seen: set[str] = set()
        for key in ("shouldExist", "shouldNotExist"):
            for index, value in enumerate(kargs.get(key, [])):
                if value in seen:
                    self.report.error(kargs.origin(key) + (index,), "duplicate entry defined")
                seen.add(value)

    def ignition(self, ignition: Obj) -> None:
        cfg = ignition.get("config") or {}
        for res in cfg.get("merge", []):
            if res.get("source") is None:
                self.error(res, "source", "source is required")
            self.resource(res)
        if cfg.get("replace"):
            self.resource(cfg["replace"])
        tls = (ignition.get("security") or {}).get("tls") or {}
        for res in tls.get("certificateAuthorities", []):
            if res.get("source") is None:
                self.error(res, "source", "source is required")
            self.resource(res)
        proxy = ignition.get("proxy") or {}
        for key in ("httpProxy", "httpsProxy"):
            value = proxy.get(key)
            if value and urlsplit(value).scheme not in ("http", "https"):
                self.error(proxy, key, "proxies must be http(s)")
        if proxy.get("httpsProxy", "").startswith("http://"):
            self.warn(proxy, "httpsProxy", "insecure plaintext HTTP proxy specified for HTTPS resources")


def _overlapping_partition(parts: list[Obj]) -> int | None:
    """Index of a partition that an explicitly placed and sized one overlaps (Ignition's check)."""

    def end(part: Obj) -> int:
        start, size = int(part["startMiB"]), int(part["sizeMiB"])
        return start if size == 0 else start + size - 1

    placed = [(i, p) for i, p in enumerate(parts) if p.get("startMiB") and p.get("sizeMiB") is not None]
    for _, one in placed:
        for index, other in placed:
            if one is other or one == other:
                continue
            start = int(one["startMiB"])
            if (other["startMiB"] <= start <= end(other) or other["startMiB"] <= end(one) <= end(other)
                    or (start < other["startMiB"] and end(one) > end(other))):
                return index
    return None


def parse_unit(contents: str) -> list[tuple[str | None, str]] | str:
    """Parse unit file text like go-systemd's unit.Deserialize; error text on failure."""
    options: list[tuple[str | None, str]] = []
    section: str | None = None
    lines = contents.replace("\r\n", "\n").split("\n")
    index = 0
    while index < len(lines):
        line = lines[index].strip()
        index += 1
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            end = line.find("]")
            if end < 0:
                return "unable to find end of section"
            if line[end + 1 :].strip():
                return f"found garbage after section name {line[end + 1:].strip()}"
            section = line[1:end]
            continue
        if "=" not in line:
            return "unexpected newline encountered while parsing option name"
        name, _, value = line.partition("=")
        while value.endswith("\\") and index < len(lines):
            value = value[:-1] + " " + lines[index].strip()
            index += 1
        options.append((section, name.strip()))
    return options


def _paths_taken_by_units(config: Obj, report: Report) -> None:
    """Ignition: a file, directory or link may not be where a unit or dropin with contents goes."""
    unit_paths: set[str] = set()
    for unit in (config.get("systemd") or {}).get("units", []):
        if unit.get("contents"):
            unit_paths.add(f"/etc/systemd/system/{unit.get('name', '')}")
        for dropin in unit.get("dropins", []):
            if dropin.get("contents"):
                unit_paths.add(f"/etc/systemd/system/{unit.get('name', '')}.d/{dropin.get('name', '')}")
    for kind in ("files", "directories", "links"):
        for node in (config.get("storage") or {}).get(kind, []):
            if node.get("path") in unit_paths:
                report.error(node.origin("path") if isinstance(node, Obj) else (),
                             "path conflicts with systemd unit or dropin")


def validate_generated(config: Obj, minor: int, report: Report) -> None:
    checker = _Checker(minor, report)
    _paths_taken_by_units(config, report)
    checker.ignition(config.get("ignition") or Obj())
    if config.get("kernelArguments"):
        checker.kernel_arguments(config["kernelArguments"])
    if config.get("passwd"):
        checker.passwd(config["passwd"])
    if config.get("storage"):
        checker.storage(config["storage"])
    if config.get("systemd"):
        checker.systemd(config["systemd"])
