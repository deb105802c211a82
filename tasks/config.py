"""The cluster config: one jsonnet file, evaluated once, validated up front into frozen dataclasses.

`parse(raw, source)` is pure and names the offending field in every error
(`jsonnet/cluster.jsonnet: nodes[1].role: ...`); `load(path)` evaluates the jsonnet, reads the SSH
keys and the manifests, and caches the result for the whole doit run.
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tasks.common import KEYS_DIR, BuildError

DEFAULT_CONFIG = Path("jsonnet/cluster.jsonnet")

STREAMS = ("stable", "testing", "next")
ARCHITECTURES = ("x86_64", "aarch64", "ppc64le", "s390x")
ROLES = ("server", "agent")
AFTER_INSTALL = ("reboot", "poweroff")
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
class Fcos:
    stream: str = "stable"
    architecture: str = "x86_64"
    release: str | None = None
    stream_url: str | None = None
    mirror: str | None = None
    keyring: str = FEDORA_KEYRING_URL
    fingerprints: tuple[str, ...] = FEDORA_FINGERPRINTS

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
    manifests: tuple[Manifest, ...] = ()
    join_stagger_seconds: int = 60


@dataclass(frozen=True)
class Install:
    countdown_seconds: int = 10


@dataclass(frozen=True)
class Network:
    interface: str
    address: str
    gateway: str | None = None
    dns: tuple[str, ...] = ()


@dataclass(frozen=True)
class Node:
    name: str
    role: str
    iso_name: str
    disk: str = "auto"
    after_install: str = "reboot"
    network: Network | None = None


@dataclass(frozen=True)
class SshKey:
    path: str
    line: str


@dataclass(frozen=True)
class Config:
    source: str
    name: str
    fcos: Fcos
    k3s: K3s
    install: Install
    nodes: tuple[Node, ...]
    ssh_keys: tuple[SshKey, ...] = ()
    # Why keys/ cannot be used, if it cannot: render fails with it, while `doit list`, `doit clean`
    # and the CI's config queries still work on a checkout without keys.
    ssh_keys_problem: str | None = None

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

    def template_input(self) -> dict[str, Any]:
        """Everything the jsonnet templates read, defaults filled in; never the token."""
        return {
            "name": self.name,
            "fcos": {"stream": self.fcos.stream, "architecture": self.fcos.architecture},
            "k3s": {
                "version": self.k3s.version,
                "channel": None if self.k3s.version else self.k3s.channel,
                "install_script_url": self.k3s.install_script_url,
                "install_script_sha256": self.k3s.install_script_sha256,
                "server_url": self.join_url,
                "disable": list(self.k3s.disable),
                "server_config": dict(self.k3s.server_config),
                "agent_config": dict(self.k3s.agent_config),
                "manifests": {m.name: m.content for m in self.k3s.manifests},
                "join_stagger_seconds": self.k3s.join_stagger_seconds,
            },
            "install": {"countdown_seconds": self.install.countdown_seconds},
            "nodes": [node_input(node, index) for index, node in enumerate(self.nodes)],
            "first_server": self.first_server.name,
            "ssh_authorized_keys": [key.line for key in self.ssh_keys],
        }


def node_input(node: Node, index: int) -> dict[str, Any]:
    network = None
    if node.network:
        network = {"interface": node.network.interface, "address": node.network.address,
                   "gateway": node.network.gateway, "dns": list(node.network.dns)}
    return {"name": node.name, "role": node.role, "index": index, "iso_name": node.iso_name,
            "disk": node.disk, "after_install": node.after_install, "network": network}


# --- parsing: pure functions over the evaluated jsonnet --------------------------------------------

T = TypeVar("T")


class _Fields:
    """Reads one JSON object, naming `where.field` in errors and refusing unknown fields."""

    def __init__(self, source: str, where: str, raw: object, known: tuple[str, ...]) -> None:
        self.source, self.where = source, where
        if not isinstance(raw, dict):
            raise self.error("", f"must be an object, got {type_name(raw)}")
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise self.error(unknown[0], f"unknown field (known fields: {', '.join(known)})")
        self.raw: dict[str, Any] = raw

    def path(self, name: str) -> str:
        return ".".join(p for p in (self.where, name) if p)

    def error(self, name: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {self.path(name) or '(top level)'}: {message}")

    def get(self, name: str, kind: type[T] | tuple[type, ...], default: Any) -> Any:
        value = self.raw.get(name)
        if value is None:
            return default
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
            expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise self.error(name, f"must be {json_type(expected)}, got {type_name(value)}")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value: str = self.get(name, str, default)
        if value not in choices:
            raise self.error(name, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def strings(self, name: str, check: Callable[[str], bool] | None = None,
                what: str = "") -> tuple[str, ...]:
        values = self.get(name, list, [])
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
    top = _Fields(source, "", raw, ("name", "fcos", "k3s", "install", "nodes"))
    name = top.get("name", str, "k3s")
    if not RFC1123_LABEL.match(name):
        raise top.error("name", f"must be an RFC 1123 label (a-z, 0-9, '-'), got {name!r}")
    nodes = parse_nodes(source, top.get("nodes", list, [{"name": "k3s-server-1", "role": "server"}]))
    k3s = parse_k3s(_Fields(source, "k3s", top.get("k3s", dict, {}), K3S_FIELDS), read_file)
    if not any(node.role == "server" for node in nodes):
        raise top.error("nodes", "needs at least one node with role 'server' (the first starts the cluster)")
    return Config(source=source, name=name, fcos=parse_fcos(_Fields(source, "fcos", top.get("fcos", dict, {}),
                  FCOS_FIELDS), Path(source).parent), k3s=k3s, install=parse_install(_Fields(
                  source, "install", top.get("install", dict, {}), ("countdown_seconds",))),
                  nodes=nodes, ssh_keys=ssh_keys)


FCOS_FIELDS = ("stream", "architecture", "release", "stream_url", "mirror", "keyring", "fingerprints")
K3S_FIELDS = ("version", "channel", "install_script_url", "install_script_sha256", "server_url", "disable",
              "server_config", "agent_config", "manifests", "join_stagger_seconds")
NODE_FIELDS = ("name", "role", "iso_name", "disk", "after_install", "network")


def parse_fcos(f: _Fields, config_dir: Path) -> Fcos:
    for url_field in ("stream_url", "mirror"):
        url = f.get(url_field, str, None)
        if url is not None and not url.startswith(("http://", "https://", "file://")):
            raise f.error(url_field, f"must be an http://, https:// or file:// URL, got {url!r}")
    fingerprints = tuple(fp.replace(" ", "").upper() for fp in f.strings("fingerprints"))
    for i, fingerprint in enumerate(fingerprints):
        if not FINGERPRINT.match(fingerprint):
            raise f.error(f"fingerprints[{i}]", "must be a full 40-hex-digit OpenPGP fingerprint")
    if "fingerprints" in f.raw and not fingerprints:
        raise f.error("fingerprints", "must list at least one trusted key")
    return Fcos(
        stream=f.choice("stream", STREAMS, "stable"),
        architecture=f.choice("architecture", ARCHITECTURES, "x86_64"),
        release=f.get("release", str, None),
        stream_url=f.get("stream_url", str, None),
        mirror=f.get("mirror", str, None),
        keyring=resolve_local(f.get("keyring", str, FEDORA_KEYRING_URL), config_dir),
        fingerprints=fingerprints or FEDORA_FINGERPRINTS,
    )


def resolve_local(path_or_url: str, config_dir: Path) -> str:
    """A relative path is relative to the config file, like jsonnet imports and manifests."""
    if re.match(r"^[a-z][a-z0-9+.-]*://", path_or_url) or os.path.isabs(path_or_url):
        return path_or_url
    return os.path.normpath(config_dir / path_or_url)


def parse_k3s(f: _Fields, read_file: Callable[[str], str] | None) -> K3s:
    version = f.get("version", str, None)
    channel = f.get("channel", str, "stable")
    sha256 = f.get("install_script_sha256", str, None)
    if sha256 is not None and not SHA256_HEX.match(sha256):
        raise f.error("install_script_sha256", "must be 64 lowercase hex digits")
    server_url = f.get("server_url", str, None)
    if server_url is not None and not re.match(r"^https://[^/\s]+(:\d+)?/?$", server_url):
        raise f.error("server_url", f"must look like https://HOST:6443, got {server_url!r}")
    manifests = []
    for name, path in sorted(f.get("manifests", dict, {}).items()):
        if not RFC1123_LABEL.match(name):
            raise f.error(f"manifests.{name}", "name must be an RFC 1123 label (a-z, 0-9, '-')")
        if not isinstance(path, str):
            raise f.error(f"manifests.{name}", "must be the path of a YAML file")
        content = read_file(path) if read_file else ""
        manifests.append(Manifest(name=name, path=path, content=content))
    stagger = f.get("join_stagger_seconds", int, 60)
    if stagger < 0:
        raise f.error("join_stagger_seconds", "must not be negative")
    return K3s(
        version=version, channel=channel,
        install_script_url=f.get("install_script_url", str, "https://get.k3s.io"),
        install_script_sha256=sha256, server_url=server_url,
        disable=f.strings("disable", lambda s: bool(RFC1123_LABEL.match(s)), "a component name"),
        server_config=f.get("server_config", dict, {}), agent_config=f.get("agent_config", dict, {}),
        manifests=tuple(manifests), join_stagger_seconds=stagger,
    )


def parse_install(f: _Fields) -> Install:
    countdown = f.get("countdown_seconds", int, 10)
    if not 0 <= countdown <= 3600:
        raise f.error("countdown_seconds", "must be between 0 and 3600")
    return Install(countdown_seconds=countdown)


def parse_nodes(source: str, raw_nodes: list[Any]) -> tuple[Node, ...]:
    if not raw_nodes:
        raise ConfigError(f"{source}: nodes: must list at least one node")
    nodes: list[Node] = []
    for i, raw in enumerate(raw_nodes):
        f = _Fields(source, f"nodes[{i}]", raw, NODE_FIELDS)
        name = f.get("name", str, None)
        if name is None:
            raise f.error("name", "is required")
        if not RFC1123_LABEL.match(name):
            raise f.error("name", f"must be a hostname label (a-z, 0-9, '-'), got {name!r}")
        if any(node.name == name for node in nodes):
            raise f.error("name", f"duplicate node name {name!r}")
        role = f.get("role", str, None)
        if role is None:
            raise f.error("role", f"is required ({' or '.join(ROLES)})")
        role = f.choice("role", ROLES, role)
        iso_name = f.get("iso_name", str, name)
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", iso_name) or iso_name.endswith(".iso"):
            raise f.error("iso_name", f"must be a plain file name without .iso, got {iso_name!r}")
        if any(node.iso_name == iso_name for node in nodes):
            raise f.error("iso_name", f"duplicate ISO name {iso_name!r}")
        disk = f.get("disk", str, "auto")
        if disk != "auto" and not disk.startswith("/dev/"):
            raise f.error("disk", f"must be 'auto' or a /dev/disk/by-id/... path, got {disk!r}")
        if re.fullmatch(r"/dev/nvme\d+", disk):
            raise f.error("disk", f"{disk} is an NVMe controller; the disk is its namespace, e.g. {disk}n1")
        nodes.append(Node(name=name, role=role, iso_name=iso_name, disk=disk,
                          after_install=f.choice("after_install", AFTER_INSTALL, "reboot"),
                          network=parse_network(source, f"nodes[{i}].network", f.get("network", dict, None))))
    return tuple(nodes)


def parse_network(source: str, where: str, raw: object) -> Network | None:
    if raw is None:
        return None
    f = _Fields(source, where, raw, ("interface", "address", "gateway", "dns"))
    interface, address = f.get("interface", str, None), f.get("address", str, None)
    if not interface:
        raise f.error("interface", "is required for a static address (e.g. 'enp1s0')")
    if not address or not re.fullmatch(r"[0-9a-fA-F:.]+/\d{1,3}", address):
        raise f.error("address", f"must be an address with prefix length, e.g. 192.168.1.10/24, got {address!r}")
    return Network(interface=interface, address=address, gateway=f.get("gateway", str, None),
                   dns=f.strings("dns"))


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
    import _jsonnet  # slow-ish import, only when a config is actually loaded

    if not path.is_file():
        raise ConfigError(f"{path}: config file not found (select one with `doit config=PATH`)")
    try:
        return json.loads(_jsonnet.evaluate_file(os.fspath(path)))
    except RuntimeError as error:
        raise ConfigError(jsonnet_error_line(str(error))) from None


def jsonnet_error_line(message: str) -> str:
    """`RUNTIME ERROR: msg\\n\\tfile:3:5-9 ...` → `file:3: msg`: where first, as compilers do."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    head = re.sub(r"^(STATIC|RUNTIME) ERROR:\s*", "", lines[0]) if lines else message
    location = re.match(r"^(?P<file>[^:\s]+):(?P<line>\d+):[\d:()-]*\s*(?P<rest>.*)$", head)
    if location:  # static errors put the location first
        return f"{location['file']}:{location['line']}: {location['rest'] or 'syntax error'}"
    for line in lines[1:]:
        frame = re.match(r"^(?P<file>[^:\s]+):\(?(?P<line>\d+)", line)
        if frame:
            return f"{frame['file']}:{frame['line']}: {head}"
    return head


@functools.cache
def load(path: Path = DEFAULT_CONFIG, keys_dir: Path = KEYS_DIR) -> Config:
    """Evaluate, read keys and manifests, validate: once per doit run."""
    raw = evaluate_jsonnet(path)
    try:
        ssh_keys, note = read_ssh_keys(keys_dir, Path.home())
        problem = None
    except ConfigError as error:
        ssh_keys, note, problem = (), None, str(error)
    if note:
        print(f"‣ {note}", file=sys.stderr)

    def read_manifest(relative: str) -> str:
        manifest = Path(os.path.normpath(path.parent / relative))
        if not manifest.is_file():
            raise ConfigError(f"{path}: k3s.manifests: {manifest}: file not found")
        return read_text(manifest)

    cluster = parse(raw, os.fspath(path), ssh_keys=ssh_keys, read_file=read_manifest)
    for warning in disk_warnings(cluster):
        print(f"‣ warning: {warning}", file=sys.stderr)
    return dataclasses.replace(cluster, ssh_keys_problem=problem)


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
