"""The cluster config: defaults for the common case, and one clear line naming the field otherwise."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from tasks import config
from tasks.config import ConfigError, parse, read_ssh_keys
from tests.tools import REPO

ED25519 = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl "
           "alice@example.test")


def test_defaults_serve_the_common_case() -> None:
    cluster = parse({}, "c.jsonnet")
    assert cluster.fcos.stream == "stable" and cluster.fcos.architecture == "x86_64"
    assert cluster.fcos.stream_metadata_url == "https://builds.coreos.fedoraproject.org/streams/stable.json"
    assert "36F612DCF27F7D1A48A835E4DBFCF71C6D9F90A6" in cluster.fcos.fingerprints  # Fedora 44 signs FCOS 44
    assert [(n.name, n.role, n.iso_name) for n in cluster.nodes] == [("k3s-server-1", "server", "k3s-server-1")]


@pytest.mark.parametrize(("raw", "message"), [
    ({"fcos": {"stream": "beta"}}, "c.jsonnet: fcos.stream: must be one of stable, testing, next, got 'beta'"),
    ({"fcos": {"streem": "stable"}}, "c.jsonnet: fcos.streem: unknown field"),
    ({"fcos": {"stream_url": "ftp://x/stable.json"}}, "fcos.stream_url: must be an http://, https:// or file:// URL"),
    ({"fcos": {"fingerprints": ["6D9F90A6"]}}, "fcos.fingerprints[0]: must be a full 40-hex-digit"),
    ({"nodes": [{"name": "a", "role": "sever"}]}, "nodes[0].role: must be one of server, agent, got 'sever'"),
    ({"nodes": [{"name": "a"}]}, "nodes[0].role: is required"),
    ({"nodes": [{"name": "A_1", "role": "server"}]}, "nodes[0].name: must be a hostname label"),
    ({"nodes": [{"name": "a", "role": "server"}, {"name": "a", "role": "agent"}]}, "nodes[1].name: duplicate"),
    ({"nodes": [{"name": "a", "role": "agent"}]}, "nodes: needs at least one node with role 'server'"),
    ({"nodes": [{"name": "a", "role": "server", "disk": "/dev/nvme0"}]}, "is an NVMe controller"),
    ({"nodes": [{"name": "a", "role": "server", "iso_name": "a.iso"}]}, "nodes[0].iso_name: must be a plain"),
    ({"nodes": [{"name": "a", "role": "server", "network": {"interface": "eth0", "address": "10.0.0.5"}}]},
     "nodes[0].network.address: must be an address with prefix length"),
    ({"k3s": {"disable": ["Traefik"]}}, "k3s.disable[0]: must be a component name"),
    ({"k3s": {"manifests": {"my_app": "app.yaml"}}}, "k3s.manifests.my_app: name must be an RFC 1123"),
    ({"k3s": {"server_url": "http://10.0.0.1:6443"}}, "k3s.server_url: must look like https://HOST:6443"),
    ({"install": {"countdown_seconds": "10"}}, "install.countdown_seconds: must be a number, got a string"),
    ([], "c.jsonnet: (top level): must be an object, got a list"),
    ({"fcos": {"updates": {"strategy": "fleet_lock"}}}, "fcos.updates.fleet_lock_url: is required with strategy"),
    ({"fcos": {"updates": {"strategy": "weekly"}}}, "fcos.updates.strategy: must be one of periodic, fleet_lock"),
    ({"fcos": {"updates": {"days": ["Saturday"]}}}, "fcos.updates.days[0]: must be a weekday"),
    ({"fcos": {"updates": {"start_time": "3am"}}}, "fcos.updates.start_time: must be HH:MM"),
    ({"fcos": {"updates": {"length_minutes": 180}}}, "fcos.updates.stagger_minutes: must be at least length_minutes"),
    ({"install": {"console": ["ttyS0 115200"]}}, "install.console[0]: must be a kernel console"),
    ({"nodes": [{"name": "a", "role": "server", "console": "ttyS0"}]}, "nodes[0].console: must be a list"),
])
def test_errors_name_the_field(raw: object, message: str) -> None:
    with pytest.raises(ConfigError, match=None) as error:
        parse(raw, "c.jsonnet")
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_consoles_node_overrides_cluster_default() -> None:
    cluster = parse({"install": {"console": ["ttyS0,115200n8"]},
                     "nodes": [{"name": "s1", "role": "server"}, {"name": "a1", "role": "agent", "console": []}]}, "c")
    assert [cluster.consoles(node) for node in cluster.nodes] == [("ttyS0,115200n8",), ()]


def test_update_windows_wrap_past_midnight_into_the_next_day() -> None:
    updates = config.Updates(days=("Sat", "Sun"), start_time="22:00", stagger_minutes=150)
    assert config.update_window(updates, 0) == (("Sat", "Sun"), "22:00", 60)
    assert config.update_window(updates, 1) == (("Mon", "Sun"), "00:30", 60)


def test_join_url_prefers_server_url_then_static_address() -> None:
    nodes = [{"name": "s1", "role": "server", "network": {"interface": "eth0", "address": "10.0.0.5/24"}},
             {"name": "a1", "role": "agent"}]
    assert parse({"nodes": nodes}, "c").join_url == "https://10.0.0.5:6443"
    assert parse({"nodes": nodes, "k3s": {"server_url": "https://k3s.lan:6443"}}, "c").join_url == \
        "https://k3s.lan:6443"
    assert parse({"nodes": [{"name": "s1", "role": "server"}]}, "c").join_url == "https://s1:6443"


def test_template_input_has_no_token_and_picks_version_over_channel() -> None:
    cluster = parse({"k3s": {"version": "v1.33.5+k3s1"}}, "c")
    inputs = cluster.template_input()
    assert inputs["k3s"]["version"] == "v1.33.5+k3s1" and inputs["k3s"]["channel"] is None
    assert "token" not in str(inputs).lower()


def test_keys_dir_public_keys(tmp_path: Path) -> None:
    (tmp_path / "alice.pub").write_text(ED25519 + "\n")
    keys, note = read_ssh_keys(tmp_path, tmp_path / "home")
    assert [key.line for key in keys] == [ED25519] and note is None


def test_falls_back_to_users_own_keys_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "home" / ".ssh").mkdir(parents=True)
    (tmp_path / "home" / ".ssh" / "id_ed25519.pub").write_text(ED25519)
    (tmp_path / "keys").mkdir()
    keys, note = read_ssh_keys(tmp_path / "keys", tmp_path / "home")
    assert len(keys) == 1 and note and "id_ed25519.pub" in note


def test_no_key_at_all_says_how_to_add_one(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    with pytest.raises(ConfigError, match=r"no SSH public key in .*keys/ nor in ~/.ssh/: copy one in"):
        read_ssh_keys(tmp_path / "keys", tmp_path / "home")


@pytest.mark.parametrize(("content", "message"), [
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn...\n-----END OPENSSH PRIVATE KEY-----\n", "this is a private key"),
    ("ssh-ed25519 notbase64!!\n", "bad.pub:1: not an OpenSSH public key"),
    ("ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n", "not an OpenSSH public key"),
    ("\n# only a comment\n", "bad.pub: holds no SSH public key"),
])
def test_bad_key_files_are_refused_naming_the_file(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "bad.pub").write_text(content)
    with pytest.raises(ConfigError) as error:
        read_ssh_keys(tmp_path, tmp_path)
    assert message in str(error.value) and str(tmp_path / "bad.pub") in str(error.value)


def test_jsonnet_errors_are_file_and_line(tmp_path: Path) -> None:
    source = tmp_path / "cluster.jsonnet"
    source.write_text("{\n  nodes: [\n    { name: 'a', role: 'server' } +,\n  ],\n}\n")
    with pytest.raises(ConfigError, match=rf"^{source}:3: "):
        config.evaluate_jsonnet(source)
    source.write_text("local x = 1;\n{\n  nodes: error 'nodes go here',\n}\n")
    with pytest.raises(ConfigError, match=rf"^{source}:3: nodes go here$"):
        config.evaluate_jsonnet(source)


def test_the_shipped_configs_are_valid(tmp_path: Path) -> None:
    (tmp_path / "k.pub").write_text(ED25519)
    repo = Path(__file__).resolve().parent.parent
    for source in [repo / "jsonnet" / "cluster.jsonnet", *sorted((repo / "jsonnet" / "examples").glob("*.jsonnet"))]:
        config.load.cache_clear()
        cluster = config.with_files(config.load(source), tmp_path, tmp_path)  # as render reads them
        assert cluster.nodes and cluster.ssh_keys


def test_cli_prints_the_values_ci_reads(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parent.parent
    result = subprocess.run([sys.executable, "-m", "tasks.config", "stream"], cwd=repo, capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(repo)})
    # even with no SSH key anywhere (HOME is empty): CI asks before it builds
    assert result.stdout.strip() == "stable", result.stderr


def test_relative_keyring_is_relative_to_the_config_file() -> None:
    assert parse({"fcos": {"keyring": "fedora.asc"}}, "jsonnet/cluster.jsonnet").fcos.keyring == "jsonnet/fedora.asc"
    assert parse({"fcos": {"keyring": "../site/keys.asc"}}, "jsonnet/c.jsonnet").fcos.keyring == "site/keys.asc"
    for kept in ("/srv/keys.asc", "file:///srv/keys.asc", "https://example.test/k.asc"):
        assert parse({"fcos": {"keyring": kept}}, "jsonnet/c.jsonnet").fcos.keyring == kept


def test_kernel_disk_names_are_allowed_with_a_warning() -> None:
    nodes = [{"name": "a", "role": "server", "disk": "/dev/sda"},
             {"name": "b", "role": "agent", "disk": "/dev/disk/by-id/nvme-Samsung_SSD_980_1TB_S649"},
             {"name": "c", "role": "agent"}]
    warnings = config.disk_warnings(parse({"nodes": nodes}, "c.jsonnet"))
    assert warnings == ["c.jsonnet: nodes[0].disk: /dev/sda is a kernel name that can change between boots; "
                        "prefer a stable link from `ls -l /dev/disk/by-id/` on the machine"]


def test_default_fingerprints_are_fedoras_current_primary_keys() -> None:
    """The pinned defaults are the real Fedora 43-47 keys (read from the key files with gpg)."""
    from tests.tools import require_tool, shared_dir

    require_tool("gpg")
    keys = shared_dir("fixtures", "fedora-keys")
    fingerprints = {}
    for release in range(43, 48):
        listing = subprocess.run(["gpg", "--show-keys", "--with-colons",
                                  str(keys / f"RPM-GPG-KEY-fedora-{release}-primary.asc")],
                                 capture_output=True, text=True, check=True).stdout
        fingerprints[release] = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    assert config.FEDORA_FINGERPRINTS == tuple(fingerprints[release] for release in range(43, 48))


# --- the README's config table is the schema's ---------------------------------------------------------

def schema_rows(schema: type = config.Config, prefix: str = "") -> dict[str, tuple[type, str]]:
    """Every field a config file may set, as the README names it (`fcos.updates.days`, `nodes[].disk`),
    with the dataclass that declares it: nested dataclasses are opened, not listed themselves."""
    import typing

    rows: dict[str, tuple[type, str]] = {}
    hints = typing.get_type_hints(schema)
    for name in config.file_fields(schema):
        hint = hints[name]
        item = typing.get_args(hint)[0] if typing.get_origin(hint) is tuple and name == "nodes" else hint
        if dataclasses.is_dataclass(item) and isinstance(item, type):
            if item is not hint:  # a list of objects: the list has a row (its default), then its items' fields
                rows[f"{prefix}{name}"] = (schema, name)
            rows.update(schema_rows(item, f"{prefix}{name}[]." if item is not hint else f"{prefix}{name}."))
        else:
            rows[f"{prefix}{name}"] = (schema, name)
    return rows


def shown_default(schema: type, field: str) -> str | None:
    """How the README shows a default it can show literally; None where it describes it in words."""
    spec = {f.name: f for f in dataclasses.fields(schema)}[field]
    if "default" in spec.metadata:
        return str(spec.metadata["default"])
    default = config.default_of(schema, field)
    if isinstance(default, str | int) and not isinstance(default, bool):
        return f"`{default}`"
    if default in ((), {}):
        return "`[]`" if config.json_kind(schema, field) is list else "`{}`"
    return None  # None (absent) or a value described in words


def readme_rows() -> dict[str, str]:
    """The README's configuration table: field → default cell (`a` / `b` rows count for both)."""
    lines = (REPO / "README.md").read_text().splitlines()
    start = lines.index("| field | default | meaning |") + 2
    rows: dict[str, str] = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        fields, default = (cell.strip() for cell in line.strip("|").split("|")[:2])
        for name in fields.split(" / "):
            rows[name.strip("`")] = default
    return rows


def test_readme_config_table_matches_the_schema() -> None:
    schema, readme = schema_rows(), readme_rows()
    assert sorted(readme) == sorted(schema)
    for name, (dataclass, field) in schema.items():
        shown = shown_default(dataclass, field)
        if shown is not None:
            assert readme[name] == shown, f"README: {name} defaults to {readme[name]}; the schema says {shown}"


def test_a_one_node_cluster_named_like_its_node_is_still_a_cluster_image() -> None:
    cluster = parse({"name": "k3s", "output": "cluster", "nodes": [{"name": "k3s", "role": "server"}]}, "c")
    (image,) = cluster.live_images
    assert image.is_cluster and image.nodes == cluster.nodes
    (own,) = parse({"name": "k3s", "nodes": [{"name": "k3s", "role": "server"}]}, "c").live_images
    assert not own.is_cluster
