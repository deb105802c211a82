"""The small steps between the big ones: token, YAML rendering, inlining, SHA256SUMS and summary."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import yaml
from doit.exceptions import TaskFailed

from tasks import embed, inline, render, token
from tasks.common import BuildError, atomic_path
from tests.synthetic_iso import build_fcos_iso

LIVE = """variant: fcos
version: 1.4.0
storage:
  files:
    - path: /etc/hostname
      contents:
        inline: node1
    - path: /home/core/k3s-autoinstall.ign
      mode: 0600
      contents:
        inline: ''
"""


def test_inline_places_the_nested_config_at_its_path() -> None:
    nested = json.dumps({"ignition": {"version": "3.3.0"}, "passwd": {"users": [{"name": "core"}]}})
    document = yaml.safe_load(inline.inline_config(LIVE, nested))
    entry = next(f for f in document["storage"]["files"] if f["path"] == inline.NESTED_CONFIG_PATH)
    assert json.loads(entry["contents"]["inline"]) == json.loads(nested)
    assert entry["mode"] == 0o600
    assert document["storage"]["files"][0]["contents"]["inline"] == "node1"


def test_inline_without_the_entry_is_one_clear_line() -> None:
    with pytest.raises(BuildError, match="needs exactly one entry with path /home/core/k3s-autoinstall.ign"):
        inline.inline_config("variant: fcos\nversion: 1.4.0\n", "{}", source="x.fcc")


def test_rendered_yaml_keeps_strings_strings_and_scripts_readable() -> None:
    document = {"a": "0644", "b": "on", "c": "#!/bin/sh\necho hi\n", "d": 420, "e": "yes", "f": "1e3"}
    text = render.to_butane_yaml(document)
    assert "|\n" in text  # the script is a literal block
    assert yaml.safe_load(text) == document


def test_rendered_yaml_reads_the_same_in_our_yaml_v3_transpiler() -> None:
    butane = pytest.importorskip("butane")
    values = (("a", "0644"), ("b", "on"), ("c", "#!/bin/sh\necho hi\n"), ("d", "1e3"), ("e", "null"))
    files = [{"path": f"/etc/{name}", "contents": {"inline": value}} for name, value in values]
    text = render.to_butane_yaml({"variant": "fcos", "version": "1.4.0", "storage": {"files": files}})
    ignition, warnings = butane.transpile(text, strict=True)
    assert not warnings
    sources = [f["contents"]["source"] for f in json.loads(ignition)["storage"]["files"]]
    assert sources[0] == "data:,0644" and sources[1] == "data:,on" and sources[4] == "data:,null"


def test_token_generated_once_then_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(token.TOKEN_ENV, raising=False)
    target = tmp_path / "secrets" / "k3s-token"
    version = tmp_path / "token-version"
    token.write_token(target, version)
    first, first_version = target.read_text(), version.read_text()
    assert len(first) == 64
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700
    token.write_token(target, version)
    assert target.read_text() == first and version.read_text() == first_version


def test_token_from_environment_wins_and_nothing_derived_from_it_is_recorded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target, version = tmp_path / "k3s-token", tmp_path / "token-version"
    monkeypatch.setenv(token.TOKEN_ENV, "s3cr3t-from-ci")
    token.write_token(target, version)
    assert target.read_text() == "s3cr3t-from-ci"
    assert token.token_is_current(target)
    first_version = version.read_text()
    assert "s3cr3t" not in first_version  # random: what render depends on instead of the token
    monkeypatch.setenv(token.TOKEN_ENV, "rotated")
    assert not token.token_is_current(target)  # a new secret re-runs the task...
    token.write_token(target, version)
    assert version.read_text() != first_version  # ...and re-renders every node
    assert "rotated" not in repr(token.task_token())
    monkeypatch.setenv(token.TOKEN_ENV, "has space")
    assert isinstance(token.write_token(target, version), TaskFailed)
    assert target.read_text() == "rotated"


def test_atomic_path_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.iso"
    with pytest.raises(RuntimeError), atomic_path(target) as work:
        work.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_checksum_line_and_summary() -> None:
    # sha256("iso"), in the format `sha256sum -c` reads
    assert embed.checksum_line("e0e4548df88a35d5854d052281c5deedad16f286f82cb2c23f2f9dea494834ac",
                               Path("build/iso/node1.iso")) == \
        "e0e4548df88a35d5854d052281c5deedad16f286f82cb2c23f2f9dea494834ac  node1.iso\n"
    output = embed.NodeIso("node1", "server", Path("build/iso/node1.iso"), Path("build/nodes/node1/iso.json"))
    lines = embed.summary([output], "44.20260707.3.1")
    assert "44.20260707.3.1" in lines[0]
    assert "node1 (server)" in lines[1]
    assert "dd if=build/iso/node1.iso of=/dev/sdX" in lines[-1]


# --- issue 12: embed keeps the ISO tool's hint ------------------------------------------------------------

@pytest.mark.parametrize("problem, hint", [
    ("config too large", "shrink the config"),
    ("truncated ISO", "fetch the ISO again"),
])
def test_embed_failure_keeps_the_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str], problem: str,
                                      hint: str) -> None:
    verified = tmp_path / "fcos.iso"
    build_fcos_iso(verified)
    stamp = tmp_path / "verified.json"
    stamp.write_text(json.dumps({"sha256": "0" * 64}))
    ignition = tmp_path / "live.ign"
    ignition.write_bytes(os.urandom(300 * 1024) if problem == "config too large" else b"{}")
    if problem == "truncated ISO":
        os.truncate(verified, verified.stat().st_size // 2)
    target = tmp_path / "out" / "node1.iso"
    result = embed.embed_node(verified, stamp, ignition, target, tmp_path / "iso.json")
    assert isinstance(result, TaskFailed)
    assert str(verified) in str(result) and hint in str(result)
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("‣ error:")]
    assert len(errors) == 1 and hint in errors[0]
    assert not target.exists() and not target.parent.exists() or not list(target.parent.iterdir())
