"""Butane fcos schemas (1.0.0 - 1.7.0, 1.8.0-experimental) as data.

Each struct is a list of fields ``(yaml_key, type, since, until)`` where ``type`` is
``str``/``int``/``bool``, ``[T]`` for a list or a struct name, and ``since``/``until``
are fcos minor versions (inclusive) in which the key exists. A key used outside its
range is an unused key (warning), like in Butane.
"""

from __future__ import annotations

Field = tuple[str, str, int, int]
LAST = 99

# (yaml key, type, first fcos minor version, last fcos minor version)
_FieldSpec = tuple[str, str] | tuple[str, str, int] | tuple[str, str, int, int]
_STRUCTS: dict[str, list[_FieldSpec]] = {
    "Config": [
        ("version", "str"),
        ("variant", "str"),
        ("ignition", "Ignition"),
        ("kernel_arguments", "KernelArguments", 4),
        ("passwd", "Passwd"),
        ("storage", "Storage"),
        ("systemd", "Systemd"),
        ("boot_device", "BootDevice", 3),
        ("grub", "Grub", 5),
    ],
    "Ignition": [
        ("config", "IgnitionConfig"),
        ("proxy", "Proxy", 1),
        ("security", "Security"),
        ("timeouts", "Timeouts"),
    ],
    "IgnitionConfig": [("merge", "[ConfigResource]"), ("replace", "ConfigResource")],
    "Proxy": [("http_proxy", "str"), ("https_proxy", "str"), ("no_proxy", "[str]")],
    "Security": [("tls", "TLS")],
    "TLS": [("certificate_authorities", "[ConfigResource]")],
    "Timeouts": [("http_response_headers", "int"), ("http_total", "int")],
    "KernelArguments": [("should_exist", "[str]"), ("should_not_exist", "[str]")],
    "Passwd": [("groups", "[PasswdGroup]"), ("users", "[PasswdUser]")],
    "PasswdGroup": [
        ("gid", "int"),
        ("name", "str"),
        ("password_hash", "str"),
        ("should_exist", "bool", 2),
        ("system", "bool"),
    ],
    "PasswdUser": [
        ("gecos", "str"),
        ("groups", "[str]"),
        ("home_dir", "str"),
        ("name", "str"),
        ("no_create_home", "bool"),
        ("no_log_init", "bool"),
        ("no_user_group", "bool"),
        ("password_hash", "str"),
        ("primary_group", "str"),
        ("should_exist", "bool", 2),
        ("ssh_authorized_keys", "[str]"),
        ("ssh_authorized_keys_local", "[str]", 5),
        ("shell", "str"),
        ("system", "bool"),
        ("uid", "int"),
    ],
    "Storage": [
        ("directories", "[Directory]"),
        ("disks", "[Disk]"),
        ("files", "[File]"),
        ("filesystems", "[Filesystem]"),
        ("links", "[Link]"),
        ("luks", "[Luks]", 2),
        ("raid", "[Raid]"),
        ("trees", "[Tree]", 1),
    ],
    "Directory": [
        ("group", "NodeGroup"),
        ("overwrite", "bool"),
        ("path", "str"),
        ("user", "NodeUser"),
        ("mode", "int"),
    ],
    "File": [
        ("group", "NodeGroup"),
        ("overwrite", "bool"),
        ("path", "str"),
        ("user", "NodeUser"),
        ("append", "[Resource]"),
        ("contents", "Resource"),
        ("mode", "int"),
    ],
    "Link": [
        ("group", "NodeGroup"),
        ("overwrite", "bool"),
        ("path", "str"),
        ("user", "NodeUser"),
        ("hard", "bool"),
        ("target", "str"),
    ],
    "NodeUser": [("id", "int"), ("name", "str")],
    "NodeGroup": [("id", "int"), ("name", "str")],
    "Disk": [("device", "str"), ("partitions", "[Partition]"), ("wipe_table", "bool")],
    "Partition": [
        ("guid", "str"),
        ("label", "str"),
        ("number", "int"),
        ("resize", "bool", 2),
        ("should_exist", "bool"),
        ("size_mib", "int"),
        ("start_mib", "int"),
        ("type_guid", "str"),
        ("wipe_partition_entry", "bool"),
    ],
    "Filesystem": [
        ("device", "str"),
        ("format", "str"),
        ("label", "str"),
        ("mount_options", "[str]", 1),
        ("options", "[str]"),
        ("path", "str"),
        ("uuid", "str"),
        ("wipe_filesystem", "bool"),
        ("with_mount_unit", "bool", 1),
    ],
    "Luks": [
        ("cex", "Cex", 6),
        ("clevis", "Clevis"),
        ("device", "str"),
        ("discard", "bool", 5),
        ("key_file", "Resource"),
        ("label", "str"),
        ("name", "str"),
        ("open_options", "[str]", 5),
        ("options", "[str]"),
        ("uuid", "str"),
        ("wipe_volume", "bool"),
    ],
    "Clevis": [("custom", "ClevisCustom"), ("tang", "[Tang]"), ("threshold", "int"), ("tpm2", "bool")],
    "ClevisCustom": [("config", "str"), ("needs_network", "bool"), ("pin", "str")],
    "Tang": [("thumbprint", "str"), ("url", "str"), ("advertisement", "str", 5)],
    "Cex": [("enabled", "bool")],
    "Raid": [
        ("devices", "[str]"),
        ("level", "str"),
        ("name", "str"),
        ("options", "[str]"),
        ("spares", "int"),
    ],
    "Tree": [("local", "str"), ("path", "str")],
    "Systemd": [("units", "[Unit]"), ("quadlets", "[Quadlet]", 8)],
    # 1.8.0-experimental: podman quadlets, written as files under /etc/containers/systemd
    "Quadlet": [("contents", "str"), ("contents_local", "str"), ("name", "str"), ("rootful", "bool")],
    "Unit": [
        ("contents", "str"),
        ("contents_local", "str", 5),
        ("dropins", "[Dropin]"),
        ("enabled", "bool"),
        ("mask", "bool"),
        ("name", "str"),
    ],
    "Dropin": [("contents", "str"), ("contents_local", "str", 5), ("name", "str")],
    "Resource": [
        ("compression", "str"),
        ("http_headers", "[HTTPHeader]", 1),
        ("source", "str"),
        ("inline", "str"),
        ("local", "str", 1),
        ("verification", "Verification"),
    ],
    # fcos 1.0.0 config references and CAs only had source + verification
    "ConfigResource": [
        ("compression", "str", 1),
        ("http_headers", "[HTTPHeader]", 1),
        ("source", "str"),
        ("inline", "str", 1),
        ("local", "str", 1),
        ("verification", "Verification"),
    ],
    "HTTPHeader": [("name", "str"), ("value", "str")],
    "Verification": [("hash", "str")],
    "BootDevice": [("layout", "str"), ("luks", "BootDeviceLuks"), ("mirror", "BootDeviceMirror")],
    "BootDeviceLuks": [
        ("cex", "Cex", 6),
        ("device", "str", 6),
        ("discard", "bool", 5),
        ("tang", "[Tang]"),
        ("threshold", "int"),
        ("tpm2", "bool"),
    ],
    "BootDeviceMirror": [("devices", "[str]")],
    "Grub": [("users", "[GrubUser]")],
    "GrubUser": [("name", "str"), ("password_hash", "str")],
}

# Keys that only steer Butane and never reach the Ignition output.
BUTANE_ONLY = {
    "version",
    "variant",
    "inline",
    "local",
    "contents_local",
    "ssh_authorized_keys_local",
    "with_mount_unit",
    "trees",
    "quadlets",
    "boot_device",
    "grub",
}

# Go package that holds the base schema of each fcos minor version (for messages).
BASE_PACKAGE = {0: "v0_1", 1: "v0_2", 2: "v0_3", 3: "v0_3", 4: "v0_4", 5: "v0_5", 6: "v0_6", 7: "v0_7", 8: "v0_8_exp"}

_CACHE: dict[int, dict[str, dict[str, str]]] = {}


def schema_for(minor: int) -> dict[str, dict[str, str]]:
    """Struct name -> {yaml key: type} for one fcos minor version."""
    cached = _CACHE.get(minor)
    if cached is not None:
        return cached
    result: dict[str, dict[str, str]] = {}
    for name, fields in _STRUCTS.items():
        keys: dict[str, str] = {}
        for spec in fields:
            key, typ = spec[0], spec[1]
            since = spec[2] if len(spec) > 2 else 0
            until = spec[3] if len(spec) > 3 else LAST
            if since <= minor <= until:
                keys[key] = typ
        result[name] = keys
    _CACHE[minor] = result
    return result


def camel(key: str) -> str:
    """Butane snake_case key -> Ignition camelCase key (``size_mib`` -> ``sizeMiB``)."""
    parts = key.split("_")
    out = parts[0]
    for part in parts[1:]:
        out += "MiB" if part == "mib" else part[:1].upper() + part[1:]
    return out
