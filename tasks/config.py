"""The cluster config: one jsonnet file, evaluated once, validated up front into frozen dataclasses.

The dataclasses are the schema: the fields a file may set, their defaults and JSON types come from
them. `parse(raw, source)` is pure and names the offending field in every error
(`jsonnet/cluster.jsonnet: nodes[1].role: ...`); `load(path)` evaluates the jsonnet and caches the
result for the whole doit run; `with_files()` reads the SSH keys and manifests, for render.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import json
import os
import re
import sys
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.common import BuildError

DEFAULT_CONFIG = Path("jsonnet/cluster.jsonnet")

STREAMS = ("stable", "testing", "next")
ARCHITECTURES = ("x86_64", "aarch64", "ppc64le", "s390x")
ROLES = ("server", "agent")
AFTER_INSTALL = ("reboot", "poweroff")
UPDATE_STRATEGIES = ("periodic", "fleet_lock", "immediate")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
OUTPUTS = ("per-node", "cluster")
# A kernel console: a device name, optionally with serial options (ttyS0,115200n8).
CONSOLE = re.compile(r"^[a-zA-Z][a-zA-Z0-9]*(,[0-9]+([noe][5-8]r?)?)?$")
MAC = re.compile(r"^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
STREAM_BASE_URL = "https://builds.coreos.fedoraproject.org/streams"
FEDORA_KEYRING_URL = "https://fedoraproject.org/fedora.gpg"
# Fedora signs each FCOS major with the primary key of that Fedora release; a new key is created each
# cycle and shipped before use. These are the primary keys of Fedora 43 to 47 (stable, testing, next
# and the cycle after), from fedoraproject.org/security.
FEDORA_FINGERPRINTS = (
    "C6E7F081CF80E13146676E88829B606631645531",  # Fedora 43
    "36F612DCF27F7D1A48A835E4DBFCF71C6D9F90A6",  # Fedora 44
    "4F50A6114CD5C6976A7F1179655A4B02F577861E",  # Fedora 45
    "D924B10D3E810DABDD8B56B596E7E91491211FCE",  # Fedora 46
    "B2E766FA50CA6FA2D5ED06FC09D879E09488FB64",  # Fedora 47
)
SSH_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)
# RFC 1123 label: what a hostname, a file name and a Kubernetes object name may all be.
RFC1123_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
FINGERPRINT = re.compile(r"^[0-9A-F]{40}$")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class ConfigError(BuildError):
    """A config that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class Updates:
    """Zincati's update strategy on the installed nodes (held until k3s runs, then this)."""

    strategy: str = field(default="periodic", metadata={"choices": UPDATE_STRATEGIES})
    days: tuple[str, ...] = WEEKDAYS
    start_time: str = "03:00"  # UTC, Zincati's default time zone
    length_minutes: int = 60
    # Server k's window opens k * stagger_minutes after start_time; agents' after the last server's.
    stagger_minutes: int = 120
    fleet_lock_url: str | None = None


@dataclass(frozen=True)
class Fcos:
    stream: str = field(default="stable", metadata={"choices": STREAMS})
    architecture: str = field(default="x86_64", metadata={"choices": ARCHITECTURES})
    release: str | None = None
    stream_url: str | None = None
    mirror: str | None = None
    keyring: str = FEDORA_KEYRING_URL
    fingerprints: tuple[str, ...] = FEDORA_FINGERPRINTS
    updates: Updates = field(default_factory=Updates)

    @property
    def stream_metadata_url(self) -> str:
        return self.stream_url or f"{STREAM_BASE_URL}/{self.stream}.json"


@dataclass(frozen=True)
class Manifest:
    name: str
    path: str
    content: str


@dataclass(frozen=True)
class K3s:
    version: str | None = None
    channel: str | None = "stable"
    install_script_url: str = "https://get.k3s.io"
    install_script_sha256: str | None = None
    server_url: str | None = None
    disable: tuple[str, ...] = ()
    server_config: Mapping[str, Any] = field(default_factory=dict)
    agent_config: Mapping[str, Any] = field(default_factory=dict)
    manifests: tuple[Manifest, ...] = field(default=(), metadata={"json": dict})  # {name: path} in the file
    join_stagger_seconds: int = 60


@dataclass(frozen=True)
class Install:
    countdown_seconds: int = 10
    console: tuple[str, ...] = ()  # every node's consoles, unless the node sets its own


@dataclass(frozen=True)
class Network:
    interface: str
    address: str
    gateway: str | None = None
    dns: tuple[str, ...] = ()


@dataclass(frozen=True)
class Node:
    name: str
    role: str = field(metadata={"choices": ROLES})
    iso_name: str = field(metadata={"default": "the node's name"})
    disk: str = "auto"
    after_install: str = field(default="reboot", metadata={"choices": AFTER_INSTALL})
    network: Network | None = None
    console: tuple[str, ...] | None = field(default=None, metadata={"default": "`install.console`"})
    # How a cluster ISO or a network boot knows this machine (lower case; MACs with colons).
    macs: tuple[str, ...] = ()
    serial: str | None = None
    uuid: str | None = None


@dataclass(frozen=True)
class Pxe:
    base_url: str | None = None  # where build/pxe/ is served, for the iPXE scripts
    matchbox_url: str | None = field(default=None, metadata={"default": "`pxe.base_url`"})


@dataclass(frozen=True)
class LiveImage:
    """One live system to boot: a node's own ISO, or the cluster's ISO carrying every node."""

    name: str
    iso_name: str
    nodes: tuple[Node, ...]
    consoles: tuple[str, ...]
    is_cluster: bool  # said, not guessed: a one-node cluster may share its node's name


@dataclass(frozen=True)
class SshKey:
    path: str
    line: str


NOT_IN_FILE = {"in_file": False}  # filled in by load(), not written in the config file


@dataclass(frozen=True)
class Config:
    source: str = field(metadata=NOT_IN_FILE)
    name: str = "k3s"
    fcos: Fcos = field(default_factory=Fcos)
    k3s: K3s = field(default_factory=K3s)
    install: Install = field(default_factory=Install)
    nodes: tuple[Node, ...] = (Node(name="k3s-server-1", role="server", iso_name="k3s-server-1"),)
    output: str = field(default="per-node", metadata={"choices": OUTPUTS})
    pxe: Pxe = field(default_factory=Pxe)
    # Read by render (`with_files`), not by load(): `doit list`, `doit clean` and the CI's config
    # queries work on a checkout without keys, and a missing key fails the build with one line.
    ssh_keys: tuple[SshKey, ...] = field(default=(), metadata=NOT_IN_FILE)

    @property
    def first_server(self) -> Node:
        return next(node for node in self.nodes if node.role == "server")

    @property
    def join_url(self) -> str:
        """The address joining nodes use: the configured server_url, else the first server's."""
        if self.k3s.server_url:
            return self.k3s.server_url
        first = self.first_server
        host = first.network.address.split("/")[0] if first.network else first.name
        return f"https://{host}:6443"

    def consoles(self, node: Node) -> tuple[str, ...]:
        return self.install.console if node.console is None else node.console

    @property
    def live_images(self) -> tuple[LiveImage, ...]:
        """What `embed` writes: an ISO per node, or one for the cluster (live consoles: install.console,
        since the node is not known yet when the live kernel starts)."""
        if self.output == "cluster":
            return (LiveImage(self.name, self.name, self.nodes, self.install.console, is_cluster=True),)
        return tuple(LiveImage(node.name, node.iso_name, (node,), self.consoles(node), is_cluster=False)
                     for node in self.nodes)

    def template_input(self) -> dict[str, Any]:
        """Everything the jsonnet templates read: the config file's fields as parsed, defaults filled
        in, plus what is worked out from them; never the token."""
        k3s = {**as_json(self.k3s), "channel": None if self.k3s.version else self.k3s.channel,
               "server_url": self.join_url, "manifests": {m.name: m.content for m in self.k3s.manifests}}
        return {
            **{name: as_json(getattr(self, name)) for name in file_fields(Config)},
            "k3s": k3s,
            "nodes": [{**as_json(node), "index": index, "console": list(self.consoles(node)),
                       "updates": updates_input(self, node)} for index, node in enumerate(self.nodes)],
            "first_server": self.first_server.name,
            "ssh_authorized_keys": [key.line for key in self.ssh_keys],
        }


def update_window(updates: Updates, slot: int) -> tuple[tuple[str, ...], str, int]:
    """The maintenance window of the slot-th node to update (servers 0..n-1, then all agents at n):
    (days, start time, length). A start past midnight moves to the next day."""
    hours, minutes = (int(part) for part in updates.start_time.split(":"))
    start = hours * 60 + minutes + slot * updates.stagger_minutes
    day_shift, start = divmod(start, 24 * 60)
    days = tuple(sorted({WEEKDAYS[(WEEKDAYS.index(day) + day_shift) % 7] for day in updates.days},
                        key=WEEKDAYS.index))
    return days, f"{start // 60:02d}:{start % 60:02d}", updates.length_minutes


def updates_input(cluster: Config, node: Node) -> dict[str, Any]:
    """What the node's Zincati drop-in needs: staggered so that no two servers reboot together."""
    updates = cluster.fcos.updates
    out: dict[str, Any] = {"strategy": updates.strategy, "fleet_lock_url": updates.fleet_lock_url, "window": None}
    if updates.strategy == "periodic":
        servers = [n.name for n in cluster.nodes if n.role == "server"]
        slot = servers.index(node.name) if node.role == "server" else len(servers)
        days, start, length = update_window(updates, slot)
        out["window"] = {"days": list(days), "start_time": start, "length_minutes": length}
    return out


def as_json(value: object) -> Any:
    """A parsed value as the templates see it: dataclasses as objects, tuples as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: as_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [as_json(item) for item in value]
    if isinstance(value, Mapping):
        return {key: as_json(item) for key, item in value.items()}
    return value


# --- the schema: the dataclasses above -------------------------------------------------------------

def file_fields(schema: type) -> tuple[str, ...]:
    """The fields a config file may set for this dataclass, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(schema) if f.metadata.get("in_file", True))


def default_of(schema: type, name: str) -> Any:
    """The dataclass default of a field; None for a required one."""
    spec = {f.name: f for f in dataclasses.fields(schema)}[name]
    if spec.default is not dataclasses.MISSING:
        return spec.default
    if spec.default_factory is not dataclasses.MISSING:
        return spec.default_factory()
    return None


@functools.cache
def _type_hints(schema: type) -> dict[str, Any]:
    """typing.get_type_hints, once per class: it evaluates every annotation's text each time."""
    return typing.get_type_hints(schema)


def json_kind(schema: type, name: str) -> type:
    """The JSON type a field takes in the file, from its annotation: str, int, list or dict."""
    spec = {f.name: f for f in dataclasses.fields(schema)}[name]
    if "json" in spec.metadata:
        kind: type = spec.metadata["json"]
        return kind
    hint = _type_hints(schema)[name]
    options = [option for option in typing.get_args(hint) if option is not type(None)] \
        if isinstance(hint, types.UnionType) else [hint]
    origin = typing.get_origin(options[0]) or options[0]
    if origin in (tuple, list):
        return list
    if origin is Mapping or dataclasses.is_dataclass(origin):
        return dict
    assert origin in (str, int), f"{schema.__name__}.{name}: no JSON type for {hint}"
    return origin  # type: ignore[no-any-return]


class _Fields:
    """Reads one JSON object against its dataclass: refuses unknown fields, checks types, fills in
    defaults, and names `where.field` in errors."""

    def __init__(self, source: str, where: str, raw: object, schema: type) -> None:
        self.source, self.where, self.schema = source, where, schema
        if not isinstance(raw, dict):
            raise self.error("", f"must be an object, got {type_name(raw)}")
        known = file_fields(schema)
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise self.error(unknown[0], f"unknown field (known fields: {', '.join(known)})")
        self.raw: dict[str, Any] = raw

    def path(self, name: str) -> str:
        return ".".join(p for p in (self.where, name) if p)

    def error(self, name: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {self.path(name) or '(top level)'}: {message}")

    def given(self, name: str) -> Any:
        """The value in the file, type-checked; None when absent."""
        value = self.raw.get(name)
        kind = json_kind(self.schema, name)
        if value is not None and (not isinstance(value, kind) or (isinstance(value, bool) and kind is int)):
            raise self.error(name, f"must be {json_type(kind.__name__)}, got {type_name(value)}")
        return value

    def get(self, name: str) -> Any:
        """The value in the file, else the dataclass default; one of the field's choices, if it has any."""
        value = self.given(name)
        if value is None:
            return default_of(self.schema, name)
        choices = {f.name: f for f in dataclasses.fields(self.schema)}[name].metadata.get("choices")
        if choices and value not in choices:
            raise self.error(name, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def strings(self, name: str, check: Callable[[str], bool] | None = None,
                what: str = "") -> tuple[str, ...]:
        values = self.given(name) or []
        for i, value in enumerate(values):
            if not isinstance(value, str) or (check and not check(value)):
                raise self.error(f"{name}[{i}]", f"must be {what or 'a string'}, got {value!r}")
        return tuple(values)


def json_type(python_name: str) -> str:
    return {"str": "a string", "int": "a number", "list": "a list", "dict": "an object",
            "bool": "true or false"}.get(python_name, python_name)


def type_name(value: object) -> str:
    if value is None:
        return "null"
    return json_type(type(value).__name__)


def parse(raw: object, source: str, *, ssh_keys: tuple[SshKey, ...] = (),
          read_file: Callable[[str], str] | None = None) -> Config:
    top = _Fields(source, "", raw, Config)
    name = top.get("name")
    if not RFC1123_LABEL.match(name):
        raise top.error("name", f"must be an RFC 1123 label (a-z, 0-9, '-'), got {name!r}")
    raw_nodes = top.given("nodes")
    nodes = default_of(Config, "nodes") if raw_nodes is None else parse_nodes(source, raw_nodes)
    k3s = parse_k3s(_Fields(source, "k3s", top.given("k3s") or {}, K3s), read_file)
    if not any(node.role == "server" for node in nodes):
        raise top.error("nodes", "needs at least one node with role 'server' (the first starts the cluster)")
    fcos = parse_fcos(_Fields(source, "fcos", top.given("fcos") or {}, Fcos), Path(source).parent)
    install = parse_install(_Fields(source, "install", top.given("install") or {}, Install))
    pxe = parse_pxe(_Fields(source, "pxe", top.given("pxe") or {}, Pxe))
    return Config(source=source, name=name, fcos=fcos, k3s=k3s, install=install, nodes=nodes,
                  output=top.get("output"), pxe=pxe, ssh_keys=ssh_keys)


def parse_pxe(f: _Fields) -> Pxe:
    urls = {}
    for name in ("base_url", "matchbox_url"):
        url = f.get(name)
        if url is not None and not re.match(r"^(https?|tftp)://\S+$", url):
            raise f.error(name, f"must be an http://, https:// or tftp:// URL, got {url!r}")
        urls[name] = url.rstrip("/") if url else None
    return Pxe(**urls)


def parse_fcos(f: _Fields, config_dir: Path) -> Fcos:
    for url_field in ("stream_url", "mirror"):
        url = f.get(url_field)
        if url is not None and not url.startswith(("http://", "https://", "file://")):
            raise f.error(url_field, f"must be an http://, https:// or file:// URL, got {url!r}")
    fingerprints = tuple(fp.replace(" ", "").upper() for fp in f.strings("fingerprints"))
    for i, fingerprint in enumerate(fingerprints):
        if not FINGERPRINT.match(fingerprint):
            raise f.error(f"fingerprints[{i}]", "must be a full 40-hex-digit OpenPGP fingerprint")
    if "fingerprints" in f.raw and not fingerprints:
        raise f.error("fingerprints", "must list at least one trusted key")
    return Fcos(stream=f.get("stream"), architecture=f.get("architecture"), release=f.get("release"),
                stream_url=f.get("stream_url"), mirror=f.get("mirror"),
                keyring=resolve_local(f.get("keyring"), config_dir),
                fingerprints=fingerprints or f.get("fingerprints"),
                updates=parse_updates(_Fields(f.source, "fcos.updates", f.given("updates") or {}, Updates)))


def parse_updates(f: _Fields) -> Updates:
    days = f.strings("days", lambda day: day in WEEKDAYS, f"a weekday ({', '.join(WEEKDAYS)})")
    if "days" in f.raw and not days:
        raise f.error("days", "must list at least one weekday")
    start_time = f.get("start_time")
    if not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", start_time):
        raise f.error("start_time", f"must be HH:MM (24 h, UTC), got {start_time!r}")
    length = f.get("length_minutes")
    if not 1 <= length <= 24 * 60:
        raise f.error("length_minutes", "must be between 1 and 1440")
    stagger = f.get("stagger_minutes")
    if stagger < length:
        raise f.error("stagger_minutes", f"must be at least length_minutes ({length}): two servers' windows "
                      "would overlap and both could reboot at once")
    strategy, url = f.get("strategy"), f.get("fleet_lock_url")
    if url is not None and not url.startswith(("http://", "https://")):
        raise f.error("fleet_lock_url", f"must be an http:// or https:// URL, got {url!r}")
    if strategy == "fleet_lock" and url is None:
        raise f.error("fleet_lock_url", "is required with strategy 'fleet_lock' (the FleetLock server's URL)")
    return Updates(strategy=strategy, days=days or f.get("days"), start_time=start_time, length_minutes=length,
                   stagger_minutes=stagger, fleet_lock_url=url)


def parse_consoles(f: _Fields, name: str) -> tuple[str, ...]:
    return f.strings(name, lambda value: bool(CONSOLE.match(value)),
                     "a kernel console such as 'ttyS0,115200n8' or 'tty0'")


def resolve_local(path_or_url: str, config_dir: Path) -> str:
    """A relative path is relative to the config file, like jsonnet imports and manifests."""
    if re.match(r"^[a-z][a-z0-9+.-]*://", path_or_url) or os.path.isabs(path_or_url):
        return path_or_url
    return os.path.normpath(config_dir / path_or_url)


def parse_k3s(f: _Fields, read_file: Callable[[str], str] | None) -> K3s:
    sha256 = f.get("install_script_sha256")
    if sha256 is not None and not SHA256_HEX.match(sha256):
        raise f.error("install_script_sha256", "must be 64 lowercase hex digits")
    server_url = f.get("server_url")
    if server_url is not None and not re.match(r"^https://[^/\s]+(:\d+)?/?$", server_url):
        raise f.error("server_url", f"must look like https://HOST:6443, got {server_url!r}")
    manifests = []
    for name, path in sorted((f.given("manifests") or {}).items()):
        if not RFC1123_LABEL.match(name):
            raise f.error(f"manifests.{name}", "name must be an RFC 1123 label (a-z, 0-9, '-')")
        if not isinstance(path, str):
            raise f.error(f"manifests.{name}", "must be the path of a YAML file")
        content = read_file(path) if read_file else ""
        manifests.append(Manifest(name=name, path=path, content=content))
    stagger = f.get("join_stagger_seconds")
    if stagger < 0:
        raise f.error("join_stagger_seconds", "must not be negative")
    return K3s(
        version=f.get("version"), channel=f.get("channel"), install_script_url=f.get("install_script_url"),
        install_script_sha256=sha256, server_url=server_url,
        disable=f.strings("disable", lambda s: bool(RFC1123_LABEL.match(s)), "a component name"),
        server_config=f.get("server_config"), agent_config=f.get("agent_config"),
        manifests=tuple(manifests), join_stagger_seconds=stagger,
    )


def parse_install(f: _Fields) -> Install:
    countdown = f.get("countdown_seconds")
    if not 0 <= countdown <= 3600:
        raise f.error("countdown_seconds", "must be between 0 and 3600")
    return Install(countdown_seconds=countdown, console=parse_consoles(f, "console"))


def parse_nodes(source: str, raw_nodes: list[Any]) -> tuple[Node, ...]:
    if not raw_nodes:
        raise ConfigError(f"{source}: nodes: must list at least one node")
    nodes: list[Node] = []
    for i, raw in enumerate(raw_nodes):
        f = _Fields(source, f"nodes[{i}]", raw, Node)
        name = f.given("name")
        if name is None:
            raise f.error("name", "is required")
        if not RFC1123_LABEL.match(name):
            raise f.error("name", f"must be a hostname label (a-z, 0-9, '-'), got {name!r}")
        if any(node.name == name for node in nodes):
            raise f.error("name", f"duplicate node name {name!r}")
        if f.given("role") is None:
            raise f.error("role", f"is required ({' or '.join(ROLES)})")
        iso_name = f.given("iso_name") or name
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", iso_name) or iso_name.endswith(".iso"):
            raise f.error("iso_name", f"must be a plain file name without .iso, got {iso_name!r}")
        if any(node.iso_name == iso_name for node in nodes):
            raise f.error("iso_name", f"duplicate ISO name {iso_name!r}")
        disk = f.get("disk")
        if disk != "auto" and not disk.startswith("/dev/"):
            raise f.error("disk", f"must be 'auto' or a /dev/disk/by-id/... path, got {disk!r}")
        if re.fullmatch(r"/dev/nvme\d+", disk):
            raise f.error("disk", f"{disk} is an NVMe controller; the disk is its namespace, e.g. {disk}n1")
        nodes.append(Node(name=name, role=f.get("role"), iso_name=iso_name, disk=disk,
                          after_install=f.get("after_install"),
                          network=parse_network(source, f"nodes[{i}].network", f.given("network")),
                          console=None if f.given("console") is None else parse_consoles(f, "console"),
                          **parse_identity(f, nodes)))
    return tuple(nodes)


def parse_identity(f: _Fields, earlier: list[Node]) -> dict[str, Any]:
    """macs, serial, uuid: normalized, and never listed for two nodes (a machine would match both)."""
    macs = tuple(mac.lower().replace("-", ":") for mac in f.strings("macs", lambda v: bool(MAC.match(v.lower())),
                                                                     "a MAC address such as 52:54:00:12:34:56"))
    serial = f.given("serial")
    serial = "".join(serial.split()).lower() if serial is not None else None
    if serial == "":
        raise f.error("serial", "must not be empty")
    uuid = f.given("uuid")
    uuid = uuid.lower() if uuid is not None else None
    if uuid is not None and not UUID.match(uuid):
        raise f.error("uuid", f"must be a UUID such as 4c4c4544-0042-3510-8051-b4c04f4e4a32, got {uuid!r}")
    if len(set(macs)) != len(macs):
        raise f.error("macs", "lists an address twice")
    for other in earlier:
        for mac in sorted(set(macs) & set(other.macs)):
            raise f.error("macs", f"{mac} is listed for node {other.name} too: a machine would match both")
        if serial is not None and serial == other.serial:
            raise f.error("serial", f"{serial} is listed for node {other.name} too: a machine would match both")
        if uuid is not None and uuid == other.uuid:
            raise f.error("uuid", f"{uuid} is listed for node {other.name} too: a machine would match both")
    return {"macs": macs, "serial": serial, "uuid": uuid}


def parse_network(source: str, where: str, raw: object) -> Network | None:
    if raw is None:
        return None
    f = _Fields(source, where, raw, Network)
    interface, address = f.given("interface"), f.given("address")
    if not interface:
        raise f.error("interface", "is required for a static address (e.g. 'enp1s0')")
    if not address or not re.fullmatch(r"[0-9a-fA-F:.]+/\d{1,3}", address):
        raise f.error("address", f"must be an address with prefix length, e.g. 192.168.1.10/24, got {address!r}")
    return Network(interface=interface, address=address, gateway=f.get("gateway"), dns=f.strings("dns"))


# --- SSH keys ---------------------------------------------------------------------------------------

def parse_ssh_key(path: str, text: str) -> list[SshKey]:
    """The public keys in one file; a private or malformed key is a ConfigError naming the file."""
    if "PRIVATE KEY" in text:
        raise ConfigError(f"{path}: this is a private key; put only public keys (*.pub) in keys/")
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) < 2 or parts[0] not in SSH_KEY_TYPES or not valid_key_blob(parts[0], parts[1]):
            raise ConfigError(f"{path}:{number}: not an OpenSSH public key "
                              f"(expected '<type> <base64> [comment]', type one of {', '.join(SSH_KEY_TYPES)})")
        keys.append(SshKey(path=path, line=" ".join(parts)))
    if not keys:
        raise ConfigError(f"{path}: holds no SSH public key")
    return keys


def valid_key_blob(key_type: str, blob: str) -> bool:
    """The base64 blob decodes and starts with its own type name, as every OpenSSH key does."""
    try:
        data = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        return False
    length = int.from_bytes(data[:4], "big")
    return data[4:4 + length] == key_type.encode()


def read_ssh_keys(keys_dir: Path, home: Path) -> tuple[tuple[SshKey, ...], str | None]:
    """keys/*.pub, else ~/.ssh/*.pub (returning a note saying so); none at all is an error."""
    for candidate in sorted(keys_dir.glob("*")) if keys_dir.is_dir() else []:
        if candidate.is_file() and candidate.suffix != ".pub" and "PRIVATE KEY" in read_text(candidate):
            raise ConfigError(f"{candidate}: this is a private key; put only public keys (*.pub) in keys/")
    files = sorted(keys_dir.glob("*.pub"))
    note = None
    if not files:
        files = sorted((home / ".ssh").glob("*.pub"))
        if files:
            note = f"no keys in {keys_dir}/; authorizing your own {', '.join(str(p) for p in files)}"
    if not files:
        raise ConfigError(f"no SSH public key in {keys_dir}/ nor in ~/.ssh/: copy one in, e.g. "
                          f"`cp ~/.ssh/id_ed25519.pub {keys_dir}/` (or create one with `ssh-keygen -t ed25519`)")
    keys: list[SshKey] = []
    for path in files:
        keys.extend(parse_ssh_key(os.fspath(path), read_text(path)))
    return tuple(keys), note


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None


# --- loading ---------------------------------------------------------------------------------------

def evaluate_jsonnet(path: Path) -> object:
    """Evaluate the config file; a jsonnet error becomes one line with file:line."""
    import _gojsonnet  # only when a config is actually loaded

    if not path.is_file():
        raise ConfigError(f"{path}: config file not found (select one with `doit config=PATH`)")
    try:
        return json.loads(_gojsonnet.evaluate_file(os.fspath(path)))
    except RuntimeError as error:
        raise ConfigError(jsonnet_error_line(str(error))) from None


def jsonnet_error_line(message: str) -> str:
    """go-jsonnet's errors as `file:line: message`, where first as compilers do. A syntax error is
    `file:3:5-9 message` and a source excerpt; a runtime error is `RUNTIME ERROR: message` and a
    stack of `file:3:5-9 ...` frames, of which the first outside the standard library (`<std>`)
    is the template's or config's line that called it."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return "jsonnet error (no message)"
    if not lines[0].startswith("RUNTIME ERROR:"):
        static = re.match(r"^(?P<file>[^:\s]+):\(?(?P<line>\d+):[\d:()-]*\s*(?P<rest>.*)$", lines[0])
        if static:
            return f"{static['file']}:{static['line']}: {static['rest'] or 'syntax error'}"
        return lines[0]
    head = lines[0].removeprefix("RUNTIME ERROR:").strip()
    for line in lines[1:]:
        frame = re.match(r"^(?P<file>[^:\s]+):\(?(?P<line>\d+)", line)
        if frame and frame["file"] != "<std>":
            return f"{frame['file']}:{frame['line']}: {head}"
    return head


@functools.cache
def load(path: Path = DEFAULT_CONFIG) -> Config:
    """Evaluate and validate: once per doit run. The files the config names (SSH keys, manifests) are
    read by the steps that use them (`with_files`)."""
    cluster = parse(evaluate_jsonnet(path), os.fspath(path))
    for warning in disk_warnings(cluster):
        print(f"‣ warning: {warning}", file=sys.stderr)
    return cluster


def with_files(cluster: Config, keys_dir: Path, home: Path) -> Config:
    """The config with the SSH public keys and the manifests' contents read in; one line on failure."""
    keys, note = read_ssh_keys(keys_dir, home)
    if note:
        print(f"‣ {note}", file=sys.stderr)
    manifests = []
    for manifest, path in zip(cluster.k3s.manifests, manifest_paths(cluster), strict=True):
        if not path.is_file():
            raise ConfigError(f"{cluster.source}: k3s.manifests: {path}: file not found")
        manifests.append(dataclasses.replace(manifest, content=read_text(path)))
    return dataclasses.replace(cluster, ssh_keys=keys, k3s=dataclasses.replace(cluster.k3s, manifests=tuple(manifests)))


def ssh_key_files(keys_dir: Path, home: Path) -> list[Path]:
    """The files read_ssh_keys reads: everything in keys/ (a private key there is refused), else ~/.ssh/*.pub."""
    files = sorted(path for path in keys_dir.glob("*") if path.is_file()) if keys_dir.is_dir() else []
    return files if any(path.suffix == ".pub" for path in files) else sorted((home / ".ssh").glob("*.pub"))


def disk_warnings(cluster: Config) -> list[str]:
    """Kernel names like /dev/sda can change between boots and machines: say so, but allow them."""
    return [f"{cluster.source}: nodes[{i}].disk: {node.disk} is a kernel name that can change between "
            f"boots; prefer a stable link from `ls -l /dev/disk/by-id/` on the machine"
            for i, node in enumerate(cluster.nodes)
            if node.disk != "auto" and not node.disk.startswith(("/dev/disk/by-", "/dev/mapper/"))]


def manifest_paths(config: Config) -> list[Path]:
    base = Path(config.source).parent
    return [Path(os.path.normpath(base / m.path)) for m in config.k3s.manifests]


def current() -> Config:
    """The config this doit run uses: `doit config=PATH`, else jsonnet/cluster.jsonnet."""
    from doit import get_var

    # get_var gives None outside a doit run (a test calling a task creator directly)
    return load(Path(get_var("config", None) or DEFAULT_CONFIG))


def main(argv: list[str]) -> int:
    """`python -m tasks.config [stream|nodes]`: values scripts (CI) need, or the whole config."""
    try:
        cluster = load()
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    what = argv[0] if argv else ""
    if what == "stream":
        print(cluster.fcos.stream)
    elif what == "nodes":
        print("-".join(node.name for node in cluster.nodes))
    elif not what:
        print(json.dumps(cluster.template_input(), indent=2))
    else:
        print(f"error: unknown query {what!r} (stream, nodes)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
