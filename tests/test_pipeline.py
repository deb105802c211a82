"""The whole pipeline, end to end: `python -m doit` in a copy of the project against a local mirror.

Each test here is something a user does: build, rebuild with nothing to do, re-embed after an SSH
key change with no network, change a k3s setting, move the checkout (as a CI cache restore does).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.mirror import Mirror
from tests.pipeline_project import Project, file_contents
from tests.tools import require_tool, ssh_keygen

STEPS = ("fetch", "verify", "render", "butane", "inline", "embed")


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirror]:
    require_tool("gpg", "gpgv", "ssh-keygen")
    with Mirror(tmp_path_factory.mktemp("mirror")) as running:
        yield running


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, mirror: Mirror) -> Project:
    """A project built once from scratch; tests that change it work on copies."""
    project = Project.create(tmp_path_factory.mktemp("built") / "checkout", mirror)
    run = project.doit()
    assert run.returncode == 0, run.stdout + run.stderr
    return project


def copy_project(project: Project, target: Path) -> Project:
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", os.fspath(project.root), os.fspath(target)], check=True)
    home = target.parent / f"{target.name}-home"
    home.mkdir()
    copy = Project(target, home)
    copy.published = project.published
    return copy


def embedded_live_config(iso: Path) -> dict[str, Any]:
    from tasks.iso import show_ignition

    config: dict[str, Any] = json.loads(show_ignition(iso))
    return config


def nested_installed_config(iso: Path) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(file_contents(embedded_live_config(iso), "/home/core/k3s-autoinstall.ign"))
    return config


def core_keys(ignition: dict[str, Any]) -> list[str]:
    keys: list[str] = next(user for user in ignition["passwd"]["users"] if user["name"] == "core")["sshAuthorizedKeys"]
    return keys


def test_build_embeds_live_config_carrying_installed_config_with_keys(built: Project) -> None:
    iso = built.root / "build" / "iso" / "node1.iso"
    alice = (built.root / "keys" / "alice.pub").read_text().strip()
    live = embedded_live_config(iso)
    nested = nested_installed_config(iso)
    assert alice in core_keys(live)
    assert alice in core_keys(nested)
    sums = (built.root / "build" / "iso" / "SHA256SUMS").read_text()
    assert sums.endswith("  node1.iso\n")
    subprocess.run(["sha256sum", "--check", "--quiet", "SHA256SUMS"], cwd=iso.parent, check=True)


def test_token_is_secret(built: Project) -> None:
    token = (built.root / "build" / "secrets" / "k3s-token").read_text()
    agent_token = (built.root / "build" / "secrets" / "k3s-agent-token").read_text()
    for path in (built.root / "build").rglob("*"):
        data = path.read_bytes()[:4 << 20] if path.is_file() else b""
        if token.encode() in data or agent_token.encode() in data:
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode & 0o077 == 0, f"{path} holds a token and is mode {mode:o}"
    assert stat.S_IMODE((built.root / "build" / "iso" / "node1.iso").stat().st_mode) == 0o600
    # doit's record holds md5s of the files that hold the token: private too
    assert stat.S_IMODE((built.root / "build" / ".doit.json").stat().st_mode) == 0o600
    info = built.doit("info", "render:node1")
    assert token not in info.stdout + info.stderr and agent_token not in info.stdout + info.stderr
    # doit's DB (cached in CI) holds no md5 of the token: render depends on a random version file
    assert hashlib.md5(token.encode()).hexdigest() not in (built.root / "build" / ".doit.json").read_text()


def test_second_run_executes_nothing(built: Project) -> None:
    run = built.doit()
    assert run.returncode == 0, run.stderr
    assert run.executed == []


def test_key_change_reembeds_offline(built: Project, mirror: Mirror, tmp_path: Path) -> None:
    project = copy_project(built, tmp_path / "checkout")
    bob = ssh_keygen(project.root / "keys" / "bob", "bob@example.test")
    mirror.stop()  # no network from here on: nothing after the build fetches
    run = project.doit("embed")
    assert run.returncode == 0, run.stdout + run.stderr
    steps = {task.split(":")[0] for task in run.executed}
    assert steps == {"render", "butane", "inline", "embed"}, run.executed
    iso = project.root / "build" / "iso" / "node1.iso"
    assert bob in core_keys(nested_installed_config(iso))
    subprocess.run(["sha256sum", "--check", "--quiet", "SHA256SUMS"], cwd=iso.parent, check=True)


def test_reembed_patches_the_last_output_unless_it_was_touched(built: Project, tmp_path: Path) -> None:
    project = copy_project(built, tmp_path / "checkout")
    iso = project.root / "build" / "iso" / "node1.iso"
    before = iso.stat().st_ino
    ssh_keygen(project.root / "keys" / "carol", "carol@example.test")
    assert project.doit("embed").returncode == 0
    assert iso.stat().st_ino == before  # only the embed area was rewritten, no 800 MB copy
    os.utime(iso)  # someone touched the output: no longer known to be ours, so copy afresh
    ssh_keygen(project.root / "keys" / "dave", "dave@example.test")
    assert project.doit("embed").returncode == 0
    assert iso.stat().st_ino != before
    subprocess.run(["sha256sum", "--check", "--quiet", "SHA256SUMS"], cwd=iso.parent, check=True)


def test_k3s_setting_change_does_not_refetch(built: Project, tmp_path: Path) -> None:
    project = copy_project(built, tmp_path / "checkout")
    config = project.root / "jsonnet" / "cluster.jsonnet"
    cluster = json.loads(config.read_text())
    cluster["k3s"]["disable"] = ["traefik"]
    config.write_text(json.dumps(cluster, indent=2))
    run = project.doit()
    assert run.returncode == 0, run.stdout + run.stderr
    steps = {task.split(":")[0] for task in run.executed}
    assert "fetch" not in steps and "verify" not in steps, run.executed
    assert "render" in steps and "embed" in steps


def test_console_goes_into_the_live_kernel_arguments_and_the_installer(built: Project, tmp_path: Path) -> None:
    from tasks.iso import show_kargs

    project = copy_project(built, tmp_path / "checkout")
    config = project.root / "jsonnet" / "cluster.jsonnet"
    cluster = json.loads(config.read_text())
    cluster.setdefault("install", {})["console"] = ["tty0", "ttyS0,115200n8"]
    config.write_text(json.dumps(cluster, indent=2))
    run = project.doit()
    assert run.returncode == 0, run.stdout + run.stderr
    iso = project.root / "build" / "iso" / "node1.iso"
    kargs = show_kargs(iso)
    assert kargs.endswith(" console=tty0 console=ttyS0,115200n8"), kargs
    assert show_kargs(iso, default=True) in kargs  # appended to the defaults, which stay
    env = file_contents(embedded_live_config(iso), "/etc/k3s-autoinstall/install.env").decode()
    assert "K3S_AI_CONSOLES='tty0 ttyS0,115200n8'" in env
    subprocess.run(["sha256sum", "--check", "--quiet", "SHA256SUMS"], cwd=iso.parent, check=True)


def test_moved_checkout_is_up_to_date(built: Project, tmp_path: Path) -> None:
    project = copy_project(built, tmp_path / "elsewhere" / "checkout")
    for path in [project.root / "dodo.py", *(project.root / "jsonnet").rglob("*"), *(project.root / "keys").glob("*")]:
        os.utime(path)  # a fresh clone: every source gets a new mtime
    run = project.doit()
    assert run.returncode == 0, run.stderr
    assert run.executed == []


def test_list_shows_the_six_steps_with_docs(built: Project) -> None:
    run = built.doit("list")
    assert run.returncode == 0, run.stderr
    listed = dict(line.split(None, 1) for line in run.stdout.splitlines() if line.strip())
    assert set(listed) == {*STEPS, "update", "pxe", "smoke"}, run.stdout  # update, network boot, VM smoke test
    assert all(doc.strip() for doc in listed.values())


def test_clean_keeps_the_download(built: Project) -> None:
    run = built.doit("clean", "-n")
    assert run.returncode == 0, run.stderr
    assert ".iso" in run.stdout  # the outputs would go
    assert "fcos" not in run.stdout, run.stdout  # never the downloaded ISO


def test_bad_config_is_one_line_naming_the_field(built: Project, tmp_path: Path) -> None:
    project = copy_project(built, tmp_path / "checkout")
    config = project.root / "jsonnet" / "cluster.jsonnet"
    cluster = json.loads(config.read_text())
    cluster["nodes"][0]["rol"] = "server"
    config.write_text(json.dumps(cluster, indent=2))
    run = project.doit()
    assert run.returncode == 3
    assert "nodes[0].rol: unknown field" in run.stderr
    assert "Traceback" not in run.stderr


def test_jsonnet_error_names_file_and_line(built: Project, tmp_path: Path) -> None:
    project = copy_project(built, tmp_path / "checkout")
    (project.root / "jsonnet" / "cluster.jsonnet").write_text("{\n  nodes: [\n    error 'no nodes yet',\n  ],\n}\n")
    run = project.doit()
    assert run.returncode == 3
    assert "jsonnet/cluster.jsonnet:3: no nodes yet" in run.stderr


def test_private_key_in_keys_is_refused(built: Project, tmp_path: Path) -> None:
    project = copy_project(built, tmp_path / "checkout")
    ssh_keygen(project.root / "keys" / "oops", keep_private=True)
    shutil.copy(project.root / "keys" / "oops", project.root / "keys" / "oops2.pub")
    run = project.doit()
    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if line.startswith("‣ error:")]
    assert len(errors) == 1 and "keys/oops: this is a private key" in errors[0], run.stderr
    assert "Traceback" not in run.stderr
    assert project.doit("list").returncode == 0  # the rest of doit still works


def test_no_key_at_all_says_how_to_add_one(built: Project, tmp_path: Path) -> None:
    project = copy_project(built, tmp_path / "checkout")
    for key in (project.root / "keys").glob("*.pub"):
        key.unlink()
    run = project.doit()
    assert run.returncode == 1
    assert "no SSH public key in keys/ nor in ~/.ssh/: copy one in" in run.stderr


def test_no_key_fails_before_the_download(mirror: Mirror, tmp_path: Path) -> None:
    project = Project.create(tmp_path / "fresh", mirror)
    for key in (project.root / "keys").glob("*.pub"):
        key.unlink()
    run = project.doit()
    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if line.startswith("‣ error:")]
    assert len(errors) == 1 and "no SSH public key in keys/ nor in ~/.ssh/" in errors[0], run.stderr
    assert run.executed == ["fetch"]  # stopped there
    assert not (project.root / "build" / "fcos" / "download").exists()  # nothing downloaded
