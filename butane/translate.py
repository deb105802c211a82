"""Butane config (decoded dicts) -> Ignition config objects.

Every output object is an :class:`Obj`: a dict remembering the YAML path it came from
(``here``) and, per JSON key, the YAML path of the field (``src``). Validation of the
generated config uses that to report errors at YAML paths, like Butane's
TranslationSet does.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path as FsPath
from typing import Any, cast

from .dataurl import make_data_url
from .report import Path, Report
from .schema import BUTANE_ONLY, camel, schema_for

ERR_NO_FILES_DIR = "local file paths are relative to a files directory that must be specified with -d/--files-dir"
ERR_FILES_DIR_ESCAPE = "local file path traverses outside the files directory"
ERR_NODE_EXISTS = "matching filesystem node has existing contents or different type"


class Obj(dict[str, Any]):
    """An Ignition JSON object that knows where in the YAML its parts came from."""

    def __init__(self, here: Path = (), *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.here: Path = tuple(here)
        self.src: dict[str, Path] = {}

    def put(self, key: str, value: Any, source: Path | None = None) -> None:
        self[key] = value
        self.src[key] = tuple(source) if source is not None else self.here

    def origin(self, key: str | None = None) -> Path:
        if key is None:
            return self.here
        return self.src.get(key, self.here)


class LocalFileError(Exception):
    pass


def read_local_file(local: str, files_dir: str | None) -> bytes:
    """Read a files-dir relative path, refusing to leave the files dir (lexically)."""
    if not files_dir:
        raise LocalFileError(ERR_NO_FILES_DIR)
    joined = os.path.normpath(os.path.join(files_dir, local))
    ensure_within_files_dir(joined, files_dir)
    try:
        with open(joined, "rb") as handle:
            return handle.read()
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise LocalFileError(f"open {joined}: {reason}") from None


def ensure_within_files_dir(path: str, files_dir: str) -> None:
    base = os.path.abspath(files_dir)
    target = os.path.abspath(path)
    if target != base and not target.startswith(base.rstrip("/") + "/"):
        raise LocalFileError(ERR_FILES_DIR_ESCAPE)


# Ignition fields without omitempty: always present in the JSON, even when empty.
def _required_fields(minor: int) -> dict[str, dict[str, Any]]:
    required: dict[str, dict[str, Any]] = {
        "File": {"path": ""},
        "Directory": {"path": ""},
        "Link": {"path": ""},
        "PasswdUser": {"name": ""},
        "PasswdGroup": {"name": ""},
        "Unit": {"name": ""},
        "Dropin": {"name": ""},
        "Disk": {"device": ""},
        "Filesystem": {"device": ""},
        "Luks": {"name": ""},
        "Raid": {"name": ""},
        "Tang": {"url": ""},
        "HTTPHeader": {"name": ""},
    }
    if minor < 6:  # raid level became optional in Ignition 3.5
        required["Raid"]["level"] = ""
    if minor < 5:  # link target became optional in Ignition 3.4
        required["Link"]["target"] = ""
    return required


class Translator:
    def __init__(self, minor: int, files_dir: str | None, report: Report) -> None:
        self.minor = minor
        self.schema = schema_for(minor)
        self.files_dir = str(files_dir) if files_dir is not None else None
        self.report = report
        self.required = _required_fields(minor)

    # ------------------------------------------------------------ generic rename
    def rename(self, value: Any, typ: str, ypath: Path) -> Any:
        if typ.startswith("["):
            inner = typ[1:-1]
            return [self.rename(item, inner, ypath + (index,)) for index, item in enumerate(value)]
        if typ not in self.schema:
            return value
        fields = self.schema[typ]
        obj = Obj(ypath)
        for key, default in self.required.get(typ, {}).items():
            obj.put(key, default)
        for key, item in value.items():
            if key in BUTANE_ONLY:
                continue
            obj.put(camel(key), self.rename(item, fields[key], ypath + (key,)), ypath + (key,))
        hook = getattr(self, f"_finish_{typ}", None)
        if hook is not None:
            hook(value, obj, ypath)
        return obj

    # ------------------------------------------------------------ custom parts
    def _read_local(self, local: str, where: Path) -> bytes | None:
        """A files-dir file's bytes; None when it cannot be read, the error reported at `where`."""
        try:
            return read_local_file(local, self.files_dir)
        except LocalFileError as exc:
            self.report.error(where, str(exc))
            return None

    def _finish_Resource(self, value: dict[str, Any], obj: Obj, ypath: Path) -> None:
        data: bytes | None = None
        where: Path = ypath
        if "local" in value:
            where = ypath + ("local",)
            data = self._read_local(value["local"], where)
            if data is None:
                return
        if "inline" in value:
            where = ypath + ("inline",)
            data = value["inline"].encode("utf-8")
        if data is None:
            return
        url, compression = make_data_url(data, value.get("compression"))
        obj.put("source", url, where)
        if compression is not None:
            obj.put("compression", compression, where)

    _finish_ConfigResource = _finish_Resource

    def _finish_Unit(self, value: dict[str, Any], obj: Obj, ypath: Path) -> None:
        if value.get("contents_local"):
            where = ypath + ("contents_local",)
            data = self._read_local(value["contents_local"], where)
            if data is None:
                return
            obj.put("contents", data.decode("utf-8", errors="replace"), where)

    _finish_Dropin = _finish_Unit

    def _finish_PasswdUser(self, value: dict[str, Any], obj: Obj, ypath: Path) -> None:
        local_files = value.get("ssh_authorized_keys_local") or []
        if not local_files:
            return
        where = ypath + ("ssh_authorized_keys_local",)
        if not self.files_dir:
            self.report.error(where, ERR_NO_FILES_DIR)
            return
        keys = list(obj.get("sshAuthorizedKeys", []))
        for index, name in enumerate(local_files):
            data = self._read_local(name, where + (index,))
            if data is None:
                continue
            keys.extend(line for line in re.split(r"\r?\n", data.decode("utf-8", errors="replace")) if line)
        obj.put("sshAuthorizedKeys", keys, where)

    # ------------------------------------------------------------ whole config
    def translate(self, config: dict[str, Any], target_version: str) -> Obj:
        out = Obj(())
        ignition = self.rename(config.get("ignition", {}), "Ignition", ("ignition",))
        ignition.here = ("ignition",)
        ignition.put("version", target_version, ("version",))
        out.put("ignition", ignition, ("ignition",))
        for key, typ in (("kernel_arguments", "KernelArguments"), ("passwd", "Passwd"),
                         ("storage", "Storage"), ("systemd", "Systemd")):
            if key in config and key in self.schema["Config"]:
                out.put(camel(key), self.rename(config[key], typ, (key,)), (key,))
        mount_units = self.mount_units(config)
        if mount_units is not None:
            out = merge_configs(mount_units, out)
        self.process_trees(config, out)
        self.process_quadlets(config, out)
        return out

    # ------------------------------------------------------------ quadlets (1.8.0-experimental)
    def process_quadlets(self, config: dict[str, Any], out: Obj) -> None:
        """Each quadlet becomes a file under /etc/containers/systemd (``users/`` unless rootful);
        a template instance (``web@8080.container``) becomes a link to its template."""
        quadlets = config.get("systemd", {}).get("quadlets", [])
        if not quadlets:
            return
        storage = out.get("storage")
        if storage is None:
            storage = Obj(("storage",))
            out.put("storage", storage, ("storage",))
        for index, quadlet in enumerate(quadlets):
            ypath: Path = ("systemd", "quadlets", index)
            name = quadlet.get("name", "")
            base = QUADLET_ROOTFUL_DIR if quadlet.get("rootful") is True else QUADLET_USER_DIR
            dest = f"{base}/{name}"
            if self._find_node(storage, dest) is not None:
                self.report.error(ypath, ERR_NODE_EXISTS)
                continue
            template = quadlet_template(name)
            entry = Obj(ypath)
            entry.put("path", dest, ypath + ("name",))
            if template is not None:
                entry.put("target", template, ypath)
                storage.setdefault("links", [])
                storage.src.setdefault("links", ypath)
                storage["links"].append(entry)
                continue
            data = b""
            where = ypath
            if quadlet.get("contents_local"):
                where = ypath + ("contents_local",)
                local = self._read_local(quadlet["contents_local"], where)
                if local is None:
                    continue
                data = local
            if quadlet.get("contents"):
                where = ypath + ("contents",)
                data = quadlet["contents"].encode("utf-8")
            contents = Obj(where)
            url, compression = make_data_url(data, None)
            contents.put("source", url, where)
            if compression is not None:
                contents.put("compression", compression, ypath)
            entry.put("contents", contents, where)
            entry.put("mode", 0o644, ypath)
            storage.setdefault("files", [])
            storage.src.setdefault("files", ypath)
            storage["files"].append(entry)

    # ------------------------------------------------------------ mount units
    def mount_units(self, config: dict[str, Any]) -> Obj | None:
        storage = config.get("storage", {})
        units: list[Obj] = []
        for index, fs in enumerate(storage.get("filesystems", [])):
            if fs.get("with_mount_unit") is not True:
                continue
            if not fs.get("format") or (fs["format"] != "swap" and not fs.get("path")):
                continue  # reported by source validation
            origin = ("storage", "filesystems", index, "with_mount_unit")
            remote = _is_remote_mount(fs.get("device", ""), storage.get("luks", []))
            name, contents = mount_unit(fs, remote)
            unit = Obj(origin)
            unit.put("contents", contents)
            unit.put("enabled", True)
            unit.put("name", name)
            units.append(unit)
        if not units:
            return None
        systemd = Obj(("storage", "filesystems"))
        systemd.put("units", units)
        parent = Obj(())
        parent.put("systemd", systemd, ("storage", "filesystems"))
        return parent

    # ------------------------------------------------------------ trees
    def process_trees(self, config: dict[str, Any], out: Obj) -> None:
        trees = config.get("storage", {}).get("trees", [])
        for index, tree in enumerate(trees):
            ypath: Path = ("storage", "trees", index)
            if not self.files_dir:
                self.report.error(ypath, ERR_NO_FILES_DIR)
                return
            if not tree.get("local"):
                continue  # reported by source validation
            source_root = os.path.normpath(os.path.join(self.files_dir, tree["local"]))
            try:
                ensure_within_files_dir(source_root, self.files_dir)
            except LocalFileError as exc:
                self.report.error(ypath, str(exc))
                continue
            try:
                info = os.stat(source_root)
            except OSError as exc:
                self.report.error(ypath, f"stat {source_root}: {(exc.strerror or '').lower()}")
                continue
            if not stat.S_ISDIR(info.st_mode):
                self.report.error(ypath, "root of tree must be a directory")
                continue
            self._walk_tree(ypath, out, source_root, tree.get("path") or "/")

    def _walk_tree(self, ypath: Path, out: Obj, source_root: str, dest_root: str) -> None:
        storage = out.get("storage")
        if storage is None:
            storage = Obj(("storage",))
            out.put("storage", storage, ("storage",))
        for relative in _walk_sorted(source_root):
            source = os.path.join(source_root, relative)
            dest = _slash_join(dest_root, relative)
            info = os.lstat(source)
            if stat.S_ISREG(info.st_mode):
                self._tree_file(ypath, storage, source, dest, info)
            elif stat.S_ISLNK(info.st_mode):
                self._tree_link(ypath, storage, source, dest)
            else:
                self.report.error(ypath, "trees may only contain files, directories, and symlinks")

    def _find_node(self, storage: Obj, dest: str) -> tuple[str, Obj] | None:
        for kind in ("files", "directories", "links"):
            for entry in storage.get(kind, []):
                if entry.get("path") == dest:
                    return kind, entry
        return None

    def _tree_file(self, ypath: Path, storage: Obj, source: str, dest: str, info: os.stat_result) -> None:
        found = self._find_node(storage, dest)
        if found is not None:
            kind, entry = found
            contents = entry.get("contents")
            if kind != "files" or (contents is not None and contents.get("source")):
                self.report.error(ypath, ERR_NODE_EXISTS)
                return
        else:
            entry = Obj(ypath)
            entry.put("path", dest)
            storage.setdefault("files", [])
            storage.src.setdefault("files", ypath)
            storage["files"].append(entry)
        data = FsPath(source).read_bytes()
        contents = entry.get("contents")
        if contents is None:
            contents = Obj(ypath)
            entry.put("contents", contents, ypath)
        url, compression = make_data_url(data, contents.get("compression"))
        contents.put("source", url, ypath)
        if compression is not None:
            contents.put("compression", compression, ypath)
        if "mode" not in entry:
            entry.put("mode", 0o755 if info.st_mode & 0o111 else 0o644, ypath)

    def _tree_link(self, ypath: Path, storage: Obj, source: str, dest: str) -> None:
        found = self._find_node(storage, dest)
        if found is not None:
            kind, entry = found
            if kind != "links" or entry.get("target"):
                self.report.error(ypath, ERR_NODE_EXISTS)
                return
        else:
            entry = Obj(ypath)
            entry.put("path", dest)
            storage.setdefault("links", [])
            storage.src.setdefault("links", ypath)
            storage["links"].append(entry)
        entry.put("target", os.readlink(source), ypath)


QUADLET_ROOTFUL_DIR = "/etc/containers/systemd"
QUADLET_USER_DIR = "/etc/containers/systemd/users"
QUADLET_EXTENSIONS = (".container", ".volume", ".network", ".kube", ".image", ".build", ".pod", ".artifact")


def quadlet_template(name: str) -> str | None:
    """``foo@bar.container`` -> ``foo@.container``; None unless a template instance."""
    at = name.find("@")
    dot = name.find(".")
    if at == -1 or at + 1 == dot:
        return None
    return f"{name[:at]}@.{name[dot + 1:]}"


def _walk_sorted(root: str, prefix: str = "") -> list[str]:
    """Relative paths below root, depth first, entries sorted by byte value (filepath.Walk)."""
    result: list[str] = []
    directory = os.path.join(root, prefix) if prefix else root
    for name in sorted(os.listdir(directory), key=os.fsencode):
        relative = f"{prefix}/{name}" if prefix else name
        full = os.path.join(root, relative)
        if os.path.isdir(full) and not os.path.islink(full):
            result.extend(_walk_sorted(root, relative))
        else:
            result.append(relative)
    return result


def _slash_join(base: str, relative: str) -> str:
    import posixpath

    return posixpath.normpath(posixpath.join(base, relative))


# ------------------------------------------------------------------ mount units

_UNIT_ALLOWED = frozenset(":_.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def systemd_path_escape(path: str) -> str:
    """go-systemd's unit.UnitNamePathEscape (like ``systemd-escape --path``)."""
    import posixpath

    cleaned = posixpath.normpath(path) if path else path
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    out: list[str] = []
    in_slashes = False
    start = True
    for byte in cleaned.encode("utf-8"):
        char = chr(byte)
        if char == "/":
            in_slashes = True
            continue
        if in_slashes:
            if not start:
                out.append("-")
            in_slashes = False
        if char not in _UNIT_ALLOWED or (start and char == "."):
            out.append(f"\\x{byte:x}")
        else:
            out.append(char)
        start = False
    return "".join(out) or "-"


def _is_remote_mount(device: str, luks_entries: list[dict[str, Any]]) -> bool:
    if not (device.startswith("/dev/mapper/") or device.startswith("/dev/disk/by-id/dm-name-")):
        return False
    for luks in luks_entries:
        name = luks.get("name", "")
        if device in (f"/dev/mapper/{name}", f"/dev/disk/by-id/dm-name-{name}"):
            if luks.get("clevis", {}).get("tang"):
                return True
    return False


def mount_unit(fs: dict[str, Any], remote: bool) -> tuple[str, str]:
    device = fs.get("device", "")
    options = list(fs.get("mount_options") or [])
    if remote:
        options.append("_netdev")
    option_line = [f"Options={','.join(options)}"] if options else []
    if fs["format"] == "swap":
        lines = ["# Generated by Butane", "[Swap]", f"What={device}", *option_line, "", "[Install]",
                 "RequiredBy=swap.target"]
        return systemd_path_escape(device) + ".swap", "\n".join(lines)
    escaped = systemd_path_escape(device)
    lines = [
        "# Generated by Butane",
        "[Unit]",
        f"Requires=systemd-fsck@{escaped}.service",
        f"After=systemd-fsck@{escaped}.service",
        "",
        "[Mount]",
        f"Where={fs['path']}",
        f"What={device}",
        f"Type={fs['format']}",
        *option_line,
        "",
        "[Install]",
        "RequiredBy=remote-fs.target" if remote else "RequiredBy=local-fs.target",
    ]
    return systemd_path_escape(fs["path"]) + ".mount", "\n".join(lines)


# ------------------------------------------------------------------ merging

# List fields merged by identity (Ignition's merge keys); others are concatenated.
_LIST_KEYS = {
    "files": "path",
    "directories": "path",
    "links": "path",
    "disks": "device",
    "filesystems": "device",
    "luks": "name",
    "raid": "name",
    "units": "name",
    "dropins": "name",
    "users": "name",
    "groups": "name",
    "partitions": None,  # by number or label, see _partition_key
    "merge": "source",
    "certificateAuthorities": "source",
    "httpHeaders": "name",
    "tang": "url",
}


def _partition_key(part: dict[str, Any]) -> Any:
    if part.get("number"):
        return ("number", part["number"])
    return ("label", part.get("label"))


def merge_configs(parent: Obj, child: Obj) -> Obj:
    """Ignition's parent/child merge: child values win, keyed list entries merge in place."""
    result = Obj(parent.here)
    for key, value in parent.items():
        result.put(key, value, parent.origin(key))
    for key, value in child.items():
        if key in result and isinstance(value, dict) and isinstance(result[key], dict):
            result.put(key, merge_configs(result[key], cast(Obj, value)), child.origin(key))
        elif key in result and isinstance(value, list) and isinstance(result[key], list):
            result.put(key, _merge_lists(key, result[key], value), child.origin(key))
        else:
            result.put(key, value, child.origin(key))
    return result


def _merge_lists(field: str, parent: list[Any], child: list[Any]) -> list[Any]:
    if field not in _LIST_KEYS and not (child and isinstance(child[0], dict)):
        return parent + [item for item in child if item not in parent]
    key_name = _LIST_KEYS.get(field)

    def identity(item: Any) -> Any:
        if not isinstance(item, dict):
            return item
        return _partition_key(item) if field == "partitions" else item.get(key_name)

    merged = list(parent)
    for item in child:
        ident = identity(item)
        for position, existing in enumerate(merged):
            if identity(existing) == ident and isinstance(existing, dict):
                merged[position] = merge_configs(cast(Obj, existing), item)
                break
        else:
            merged.append(item)
    return merged
