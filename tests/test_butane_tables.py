"""Table-driven cases re-expressed from coreos/butane's own Go test tables.

Sources (coreos/butane): config/fcos/v1_6/translate_test.go (TestTranslateBootDevice:
LUKS, Tang advertisement, 3-disk mirror, mirror + LUKS, wrong partition number),
base/v0_6/translate.go + translate_test.go (mount/swap unit template, remote mounts,
trees, ssh_authorized_keys_local, contents_local, resources), base/v0_*/validate_test.go
and config/fcos/v1_*/validate_test.go (source checks), config/common/errors.go (messages).
Expected values are written from those tables, not produced by this implementation.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from butane import ButaneError, transpile

BIOS = "21686148-6449-6E6F-744E-656564454649"
ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
PREP = "9E1A2D38-C612-4316-AA26-8B49521E5A8B"
RESERVED = "8DA63339-0007-60C0-C436-083AC8230908"


def run(text: str, **kwargs: object) -> tuple[dict[str, Any], list[str]]:
    out, warns = transpile(textwrap.dedent(text), **kwargs)  # type: ignore[arg-type]
    return json.loads(out), warns


def errors(text: str, **kwargs: object) -> list[str]:
    with pytest.raises(ButaneError) as info:
        transpile(textwrap.dedent(text), **kwargs)  # type: ignore[arg-type]
    return list(info.value.entries)


def header(version: str) -> str:
    return f"variant: fcos\nversion: {version}\n"


# ---------------------------------------------------------------- boot_device (fcos v1_6 table)

def _mirror_disk(device: str, n: int, layout: str = "x86_64") -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    # v1_3+ translate.go: bios | prep | reserved first, then esp | reserved
    if layout == "x86_64":
        parts.append({"label": f"bios-{n}", "sizeMiB": 1, "typeGuid": BIOS})
    elif layout == "ppc64le":
        parts.append({"label": f"prep-{n}", "sizeMiB": 4, "typeGuid": PREP})
    else:
        parts.append({"label": f"reserved-{n}", "sizeMiB": 1, "typeGuid": RESERVED})
    if layout == "ppc64le":
        parts.append({"label": f"reserved-{n}", "sizeMiB": 1, "typeGuid": RESERVED})
    else:
        parts.append({"label": f"esp-{n}", "sizeMiB": 127, "typeGuid": ESP})
    parts += [{"label": f"boot-{n}", "sizeMiB": 384}, {"label": f"root-{n}"}]
    return {"device": device, "partitions": parts, "wipeTable": True}


def _mirror_raid(n: int) -> list[dict[str, Any]]:
    return [
        {"devices": [f"/dev/disk/by-partlabel/boot-{i}" for i in range(1, n + 1)], "level": "raid1",
         "name": "md-boot", "options": ["--metadata=1.0"]},
        {"devices": [f"/dev/disk/by-partlabel/root-{i}" for i in range(1, n + 1)], "level": "raid1",
         "name": "md-root"},
    ]


def _esp_fs(n: int) -> dict[str, Any]:
    return {"device": f"/dev/disk/by-partlabel/esp-{n}", "format": "vfat", "label": f"esp-{n}",
            "wipeFilesystem": True}


BOOT_FS = {"device": "/dev/md/md-boot", "format": "ext4", "label": "boot", "wipeFilesystem": True}

BOOT_DEVICE_CASES = [
    pytest.param(
        "boot_device:\n  luks:\n    discard: true\n    tang:\n      - url: https://example.com/\n"
        "        thumbprint: z\n    threshold: 2\n    tpm2: true\n",
        {"luks": [{"clevis": {"tang": [{"thumbprint": "z", "url": "https://example.com/"}], "threshold": 2,
                              "tpm2": True},
                   "device": "/dev/disk/by-partlabel/root", "discard": True, "label": "luks-root", "name": "root",
                   "wipeVolume": True}],
         "filesystems": [{"device": "/dev/mapper/root", "format": "xfs", "label": "root", "wipeFilesystem": True}]},
        id="luks-tang-tpm2-threshold-discard"),
    pytest.param(
        "boot_device:\n  luks:\n    tang:\n      - url: https://example.com/\n        thumbprint: z\n"
        "        advertisement: '{\"payload\": \"xyzzy\"}'\n",
        {"luks": [{"clevis": {"tang": [{"advertisement": '{"payload": "xyzzy"}', "thumbprint": "z",
                                        "url": "https://example.com/"}]},
                   "device": "/dev/disk/by-partlabel/root", "label": "luks-root", "name": "root",
                   "wipeVolume": True}],
         "filesystems": [{"device": "/dev/mapper/root", "format": "xfs", "label": "root", "wipeFilesystem": True}]},
        id="luks-tang-advertisement"),
    pytest.param(
        "boot_device:\n  mirror:\n    devices: [/dev/vda, /dev/vdb, /dev/vdc]\n",
        {"disks": [_mirror_disk("/dev/vda", 1), _mirror_disk("/dev/vdb", 2), _mirror_disk("/dev/vdc", 3)],
         "raid": _mirror_raid(3),
         "filesystems": [_esp_fs(1), _esp_fs(2), _esp_fs(3), BOOT_FS,
                         {"device": "/dev/md/md-root", "format": "xfs", "label": "root", "wipeFilesystem": True}]},
        id="mirror-3-x86_64"),
    pytest.param(
        "boot_device:\n  luks:\n    discard: true\n    tang:\n      - url: https://example.com/\n"
        "        thumbprint: z\n    threshold: 2\n    tpm2: true\n  mirror:\n    devices: [/dev/vda, /dev/vdb, /dev/vdc]\n",
        {"disks": [_mirror_disk("/dev/vda", 1), _mirror_disk("/dev/vdb", 2), _mirror_disk("/dev/vdc", 3)],
         "raid": _mirror_raid(3),
         "luks": [{"clevis": {"tang": [{"thumbprint": "z", "url": "https://example.com/"}], "threshold": 2,
                              "tpm2": True},
                   "device": "/dev/md/md-root", "discard": True, "label": "luks-root", "name": "root",
                   "wipeVolume": True}],
         "filesystems": [_esp_fs(1), _esp_fs(2), _esp_fs(3), BOOT_FS,
                         {"device": "/dev/mapper/root", "format": "xfs", "label": "root", "wipeFilesystem": True}]},
        id="mirror-3-luks-x86_64"),
    pytest.param(
        "boot_device:\n  layout: aarch64\n  mirror:\n    devices: [/dev/vda, /dev/vdb]\n",
        {"disks": [_mirror_disk("/dev/vda", 1, "aarch64"), _mirror_disk("/dev/vdb", 2, "aarch64")],
         "raid": _mirror_raid(2),
         "filesystems": [_esp_fs(1), _esp_fs(2), BOOT_FS,
                         {"device": "/dev/md/md-root", "format": "xfs", "label": "root", "wipeFilesystem": True}]},
        id="mirror-2-aarch64"),
    pytest.param(
        "boot_device:\n  layout: ppc64le\n  mirror:\n    devices: [/dev/vda, /dev/vdb]\n",
        {"disks": [_mirror_disk("/dev/vda", 1, "ppc64le"), _mirror_disk("/dev/vdb", 2, "ppc64le")],
         "raid": _mirror_raid(2),
         "filesystems": [BOOT_FS,
                         {"device": "/dev/md/md-root", "format": "xfs", "label": "root", "wipeFilesystem": True}]},
        id="mirror-2-ppc64le"),
    pytest.param(
        "boot_device:\n  layout: s390x-eckd\n  luks:\n    device: /dev/dasda\n    tpm2: true\n",
        {"luks": [{"clevis": {"tpm2": True}, "device": "/dev/dasda2", "label": "luks-root", "name": "root",
                   "wipeVolume": True}],
         "filesystems": [{"device": "/dev/mapper/root", "format": "xfs", "label": "root", "wipeFilesystem": True}]},
        id="s390x-eckd-luks"),
    pytest.param(
        "boot_device:\n  layout: s390x-zfcp\n  luks:\n    device: /dev/sdb\n    tpm2: true\n",
        {"luks": [{"clevis": {"tpm2": True}, "device": "/dev/sdb4", "label": "luks-root", "name": "root",
                   "wipeVolume": True}],
         "filesystems": [{"device": "/dev/mapper/root", "format": "xfs", "label": "root", "wipeFilesystem": True}]},
        id="s390x-zfcp-luks"),
    pytest.param(
        "boot_device:\n  layout: s390x-virt\n  luks:\n    cex:\n      enabled: true\n",
        {"luks": [{"cex": {"enabled": True}, "device": "/dev/disk/by-partlabel/root", "label": "luks-root",
                   "name": "root", "wipeVolume": True}],
         "filesystems": [{"device": "/dev/mapper/root", "format": "xfs", "label": "root", "wipeFilesystem": True}]},
        id="s390x-virt-cex"),
]


@pytest.mark.parametrize(("body", "storage"), BOOT_DEVICE_CASES)
def test_boot_device_table(body: str, storage: dict[str, Any]) -> None:
    out, warns = run(header("1.6.0") + body)
    # Butane v0.29.0: a mirror without layout warns in the stable specs (an error from 1.7.0)
    mirror_without_layout = "mirror:" in body and "layout:" not in body
    assert [w.split(": ", 1)[1] for w in warns] == (
        ["boot_device.layout should be specified when boot_device.mirror is specified"]
        if mirror_without_layout else [])
    assert out == {"ignition": {"version": "3.5.0"}, "storage": storage}


ROOT_WITHOUT_NUMBER = """\
storage:
  disks:
    - device: /dev/vda
      partitions:
        - label: root
          size_mib: 12000
          resize: true
        - label: var-home
          size_mib: 10240
  filesystems:
    - device: /dev/disk/by-partlabel/var-home
      format: xfs
      path: /var/home
      label: var-home
      wipe_filesystem: false
"""


def test_boot_device_user_partitions_merge_and_wrong_number_warns() -> None:
    # v1_6 table: a `root` partition with no number on a disk that is not wiped.
    out, warns = run(header("1.6.0") + ROOT_WITHOUT_NUMBER)
    assert out["storage"]["disks"] == [{"device": "/dev/vda", "partitions": [
        {"label": "root", "resize": True, "sizeMiB": 12000}, {"label": "var-home", "sizeMiB": 10240}]}]
    assert out["storage"]["filesystems"] == [{"device": "/dev/disk/by-partlabel/var-home", "format": "xfs",
                                              "label": "var-home", "path": "/var/home", "wipeFilesystem": False}]
    # fcos validate.go also warns that partitions without a number cannot be reused by label
    reuse = ("partitions cannot be reused by label; number must be specified except on boot disk "
             "(/dev/disk/by-id/coreos-boot-disk) or when wipe_table is true")
    assert warns == [
        f"warning at $.storage.disks.0.partitions.0.number, line 7 col 11: {reuse}",
        f"warning at $.storage.disks.0.partitions.1.number, line 10 col 11: {reuse}",
        "warning at $.storage.disks.0.partitions.0.label, line 7 col 18: "
        "incorrect partition number; a new partition will be created using reserved label"]
    # with number 4 there is nothing to warn about
    _, warns = run(header("1.6.0") + "storage:\n  disks:\n    - device: /dev/vda\n      partitions:\n"
                   "        - label: root\n          number: 4\n          size_mib: 12000\n")
    assert warns == []


def test_boot_device_mirror_merges_with_user_disk_partitions() -> None:
    # fcos translate tests: sugar is the parent, the user's config the child; a
    # user partition on a mirrored disk is appended after the generated ones.
    out, _ = run(header("1.4.0") + textwrap.dedent("""\
        boot_device:
          mirror:
            devices: [/dev/vda, /dev/vdb]
        storage:
          disks:
            - device: /dev/vda
              partitions:
                - label: root-1
                  size_mib: 8192
                - label: var-1
    """))
    parts = out["storage"]["disks"][0]["partitions"]
    assert parts == [{"label": "bios-1", "sizeMiB": 1, "typeGuid": BIOS},
                     {"label": "esp-1", "sizeMiB": 127, "typeGuid": ESP},
                     {"label": "boot-1", "sizeMiB": 384},
                     {"label": "root-1", "sizeMiB": 8192},
                     {"label": "var-1"}]
    assert out["ignition"]["version"] == "3.3.0"


@pytest.mark.parametrize(("body", "message", "where"), [
    ("boot_device:\n  layout: s390x-eckd\n  luks:\n    tpm2: true\n",
     "device is required for layouts: s390x-eckd, s390x-zfcp", "$.boot_device.layout"),
    ("boot_device:\n  layout: s390x-eckd\n  mirror:\n    devices: [/dev/dasda, /dev/dasdb]\n",
     "mirroring not supported on layouts: s390x-eckd, s390x-zfcp, s390x-virt", "$.boot_device.layout"),
    # fcos validate.go: without a layout the error is at luks.cex, with a non-s390x one at layout
    ("boot_device:\n  luks:\n    tpm2: true\n    cex:\n      enabled: true\n",
     "when using cex the targeted architecture must match s390x", "$.boot_device.luks.cex"),
    ("boot_device:\n  luks:\n    cex:\n      enabled: true\n",
     "when using cex the targeted architecture must match s390x", "$.boot_device.luks.cex"),
    ("boot_device:\n  layout: x86_64\n  luks:\n    cex:\n      enabled: true\n",
     "when using cex the targeted architecture must match s390x", "$.boot_device.layout"),
    ("boot_device:\n  mirror:\n    devices: [/dev/vda]\n",
     "mirroring requires at least two devices", "$.boot_device.mirror.devices"),
])
def test_boot_device_validation_table(body: str, message: str, where: str) -> None:
    entries = errors(header("1.6.0") + body)
    assert any(e.startswith(f"error at {where}") and e.endswith(message) for e in entries), entries


# ---------------------------------------------------------------- mount units (base/v0_6 template)

def _units(text: str) -> list[dict[str, Any]]:
    out, _ = run(text)
    units: list[dict[str, Any]] = out["systemd"]["units"]
    return units


def test_mount_unit_template_local_with_options() -> None:
    units = _units(header("1.6.0") + textwrap.dedent("""\
        storage:
          filesystems:
            - device: /dev/sda
              format: ext4
              path: /var/lib/containers
              with_mount_unit: true
              mount_options: [ro, noatime]
    """))
    assert units == [{"contents": "# Generated by Butane\n[Unit]\nRequires=systemd-fsck@dev-sda.service\n"
                                  "After=systemd-fsck@dev-sda.service\n\n[Mount]\nWhere=/var/lib/containers\n"
                                  "What=/dev/sda\nType=ext4\nOptions=ro,noatime\n\n[Install]\n"
                                  "RequiredBy=local-fs.target",
                      "enabled": True, "name": "var-lib-containers.mount"}]


@pytest.mark.parametrize("device", ["/dev/mapper/foo-bar", "/dev/disk/by-id/dm-name-foo-bar"])
def test_mount_unit_remote_for_tang_luks(device: str) -> None:
    units = _units(header("1.6.0") + textwrap.dedent(f"""\
        storage:
          luks:
            - name: foo-bar
              device: /dev/vdb
              clevis:
                tang:
                  - url: http://tang.example
                    thumbprint: abc
          filesystems:
            - device: {device}
              format: xfs
              path: /var/lib/data
              with_mount_unit: true
    """))
    escaped = device[1:].replace("-", "\\x2d").replace("/", "-")
    assert units == [{"contents": f"# Generated by Butane\n[Unit]\nRequires=systemd-fsck@{escaped}.service\n"
                                  f"After=systemd-fsck@{escaped}.service\n\n[Mount]\nWhere=/var/lib/data\n"
                                  f"What={device}\nType=xfs\nOptions=_netdev\n\n[Install]\n"
                                  "RequiredBy=remote-fs.target",
                      "enabled": True, "name": "var-lib-data.mount"}]


def test_mount_unit_not_remote_for_tpm2_luks_and_remote_options_appended() -> None:
    text = header("1.6.0") + textwrap.dedent("""\
        storage:
          luks:
            - name: a
              device: /dev/vdb
              clevis: {tpm2: true}
            - name: b
              device: /dev/vdc
              clevis:
                tang: [{url: http://t, thumbprint: x}]
          filesystems:
            - device: /dev/mapper/a
              format: xfs
              path: /var/a
              with_mount_unit: true
            - device: /dev/mapper/b
              format: swap
              with_mount_unit: true
              mount_options: [pri=1]
    """)
    units = _units(text)
    assert [u["name"] for u in units] == ["var-a.mount", "dev-mapper-b.swap"]
    assert units[0]["contents"].endswith("Type=xfs\n\n[Install]\nRequiredBy=local-fs.target")
    assert units[1]["contents"] == ("# Generated by Butane\n[Swap]\nWhat=/dev/mapper/b\nOptions=pri=1,_netdev\n\n"
                                    "[Install]\nRequiredBy=swap.target")


def test_mount_unit_user_unit_overrides_generated_contents() -> None:
    units = _units(header("1.4.0") + textwrap.dedent("""\
        storage:
          filesystems:
            - device: /dev/vdb
              format: ext4
              path: /srv
              with_mount_unit: true
        systemd:
          units:
            - name: srv.mount
              enabled: false
              contents: "[Mount]\\nWhat=/dev/vdb\\nWhere=/srv\\n"
    """))
    assert units == [{"contents": "[Mount]\nWhat=/dev/vdb\nWhere=/srv\n", "enabled": False, "name": "srv.mount"}]


@pytest.mark.parametrize(("fs", "message", "key"), [
    ("- device: /dev/vdb\n      format: ext4\n      with_mount_unit: true",
     "path is required if with_mount_unit is true and format is not swap", "path"),
    ("- device: /dev/vdb\n      path: /srv\n      with_mount_unit: true",
     "format is required if with_mount_unit is true", "format"),
])
def test_mount_unit_source_errors(fs: str, message: str, key: str) -> None:
    entries = errors(header("1.4.0") + "storage:\n  filesystems:\n    " + fs + "\n")
    assert entries[0].startswith(f"error at $.storage.filesystems.0.{key}, line 5")
    assert entries[0].endswith(message)


def test_swap_without_path_is_fine_from_1_4_and_mount_options_in_1_1() -> None:
    units = _units(header("1.1.0") + textwrap.dedent("""\
        storage:
          filesystems:
            - device: /dev/disk/by-label/data
              format: xfs
              path: /var/data
              with_mount_unit: true
              mount_options: [noatime]
    """))
    assert units[0]["name"] == "var-data.mount"
    assert "Options=noatime\n" in units[0]["contents"]
    assert "Requires=systemd-fsck@dev-disk-by\\x2dlabel-data.service" in units[0]["contents"]


# ---------------------------------------------------------------- local files, trees (base/v0_6)

@pytest.fixture()
def files_dir(tmp_path: Path) -> Path:
    root = tmp_path / "files"
    (root / "tree" / "sub").mkdir(parents=True)
    (root / "tree" / "a").write_text("a\n")
    (root / "tree" / "sub" / "x.sh").write_text("#!/bin/sh\n")
    os.chmod(root / "tree" / "sub" / "x.sh", 0o755)
    os.symlink("../a", root / "tree" / "sub" / "l")
    (root / "keys").write_bytes(b"key1\r\nkey2\n\nkey3")
    (root / "u.service").write_text("[Service]\nX=1\n")
    (tmp_path / "outside").write_text("secret")
    return root


def test_tree_fills_existing_entries_and_keeps_walk_order(files_dir: Path) -> None:
    out, warns = run(header("1.5.0") + textwrap.dedent("""\
        storage:
          files:
            - path: /tree/a
              mode: 0600
            - path: /tree/sub/other
              contents:
                source: http://example.com/x
          links:
            - path: /tree/sub/l
          trees:
            - local: tree
              path: /tree
    """), files_dir=str(files_dir))
    assert warns == []
    assert out["storage"] == {
        "files": [{"contents": {"compression": "", "source": "data:,a%0A"}, "mode": 0o600, "path": "/tree/a"},
                  {"contents": {"source": "http://example.com/x"}, "path": "/tree/sub/other"},
                  {"contents": {"compression": "", "source": "data:,%23!%2Fbin%2Fsh%0A"}, "mode": 0o755,
                   "path": "/tree/sub/x.sh"}],
        "links": [{"path": "/tree/sub/l", "target": "../a"}]}


@pytest.mark.parametrize(("body", "message", "where"), [
    ("storage:\n  trees:\n    - local: tree\n  files:\n    - path: /a\n      contents:\n        source: http://x\n",
     "matching filesystem node has existing contents or different type", "$.storage.trees.0"),
    ("storage:\n  trees:\n    - local: tree\n  directories:\n    - path: /a\n",
     "matching filesystem node has existing contents or different type", "$.storage.trees.0"),
    ("storage:\n  trees:\n    - local: keys\n", "root of tree must be a directory", "$.storage.trees.0"),
    ("storage:\n  trees:\n    - local: ../\n", "local file path traverses outside the files directory",
     "$.storage.trees.0"),
    ("storage:\n  trees:\n    - path: /x\n", "local is required", "$.storage.trees.0"),
    ("storage:\n  files:\n    - path: /a\n      contents:\n        local: ../outside\n",
     "local file path traverses outside the files directory", "$.storage.files.0.contents.local"),
    ("storage:\n  files:\n    - path: /a\n      contents:\n        local: tree\n        inline: x\n",
     "only one of the following can be set: inline, local, source", "$.storage.files.0.contents.inline"),
    ("systemd:\n  units:\n    - name: a.service\n      contents: x\n      contents_local: u.service\n",
     "only one of the following can be set: contents, contents_local", "$.systemd.units.0.contents_local"),
])
def test_local_source_errors(files_dir: Path, body: str, message: str, where: str) -> None:
    entries = errors(header("1.5.0") + body, files_dir=str(files_dir))
    assert any(e.startswith(f"error at {where},") and e.endswith(message) for e in entries), entries


@pytest.mark.parametrize("body", [
    "storage:\n  files:\n    - path: /a\n      contents:\n        local: keys\n",
    "storage:\n  trees:\n    - local: tree\n",
    "systemd:\n  units:\n    - name: a.service\n      contents_local: u.service\n",
    "passwd:\n  users:\n    - name: core\n      ssh_authorized_keys_local: [keys]\n",
    "ignition:\n  config:\n    merge:\n      - local: keys\n",
])
def test_local_without_files_dir(body: str) -> None:
    entries = errors(header("1.5.0") + body)
    assert entries[0].endswith(
        "local file paths are relative to a files directory that must be specified with -d/--files-dir")


def test_ssh_keys_local_contents_local_and_dropins(files_dir: Path) -> None:
    out, warns = run(header("1.5.0") + textwrap.dedent("""\
        passwd:
          users:
            - name: core
              ssh_authorized_keys: [k0]
              ssh_authorized_keys_local: [keys]
        systemd:
          units:
            - name: u.service
              contents_local: u.service
              dropins:
                - name: d.conf
                  contents_local: u.service
    """), files_dir=str(files_dir))
    assert warns == []
    # CRLF and LF both split lines; empty lines are dropped; inline keys come first
    assert out["passwd"] == {"users": [{"name": "core", "sshAuthorizedKeys": ["k0", "key1", "key2", "key3"]}]}
    assert out["systemd"] == {"units": [{"contents": "[Service]\nX=1\n",
                                         "dropins": [{"contents": "[Service]\nX=1\n", "name": "d.conf"}],
                                         "name": "u.service"}]}


def test_contents_local_is_unused_before_1_5(files_dir: Path) -> None:
    out, warns = run(header("1.4.0") + "systemd:\n  units:\n    - name: u.service\n      contents_local: u.service\n",
                     files_dir=str(files_dir))
    assert out["systemd"] == {"units": [{"name": "u.service"}]}
    assert warns == ["warning at $.systemd.units.0.contents_local, line 6 col 7: unused key contents_local"]


def test_ignition_config_and_ca_from_local_and_inline(files_dir: Path) -> None:
    (files_dir / "ca.pem").write_text("PEM\n")
    (files_dir / "child.ign").write_text('{"ignition":{"version":"3.3.0"}}')
    out, warns = run(header("1.4.0") + textwrap.dedent("""\
        ignition:
          config:
            merge:
              - local: child.ign
              - inline: '{"ignition":{"version":"3.3.0"}}'
              - source: https://example.com/c.ign
                verification:
                  hash: sha512-00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
                http_headers:
                  - name: Authorization
                    value: Bearer x
          security:
            tls:
              certificate_authorities:
                - local: ca.pem
          proxy:
            http_proxy: http://proxy:3128
            https_proxy: http://proxy:3128
            no_proxy: [localhost, .example.com]
          timeouts:
            http_total: 30
    """), files_dir=str(files_dir))
    # base64 is shorter than percent-escaping for JSON, so it wins (base/util/url.go)
    child = "data:;base64,eyJpZ25pdGlvbiI6eyJ2ZXJzaW9uIjoiMy4zLjAifX0="
    assert out["ignition"] == {
        "config": {"merge": [{"compression": "", "source": child}, {"compression": "", "source": child},
                             {"httpHeaders": [{"name": "Authorization", "value": "Bearer x"}],
                              "source": "https://example.com/c.ign",
                              "verification": {"hash": "sha512-" + "0" * 128}}]},
        "proxy": {"httpProxy": "http://proxy:3128", "httpsProxy": "http://proxy:3128",
                  "noProxy": ["localhost", ".example.com"]},
        "security": {"tls": {"certificateAuthorities": [{"compression": "", "source": "data:,PEM%0A"}]}},
        "timeouts": {"httpTotal": 30},
        "version": "3.3.0"}
    assert warns == ["warning at $.ignition.proxy.https_proxy, line 20 col 18: "
                     "insecure plaintext HTTP proxy specified for HTTPS resources"]


def test_ignition_config_replace_inline() -> None:
    out, _ = run(header("1.0.0") + "ignition:\n  config:\n    replace:\n      source: https://example.com/r.ign\n")
    assert out == {"ignition": {"config": {"replace": {"source": "https://example.com/r.ign"}}, "version": "3.0.0"}}
    out, _ = run(header("1.1.0") + "ignition:\n  config:\n    replace:\n      inline: x\n")
    assert out["ignition"]["config"] == {"replace": {"compression": "", "source": "data:,x"}}


# ---------------------------------------------------------------- luks / raid / disks

def test_luks_clevis_and_options_table() -> None:
    out, warns = run(header("1.5.0") + textwrap.dedent("""\
        storage:
          luks:
            - name: data
              device: /dev/vdb
              label: data
              uuid: 11111111-2222-3333-4444-555555555555
              options: [--cipher, aes-cbc-essiv:sha256]
              wipe_volume: true
              discard: true
              open_options: [--allow-discards]
              key_file:
                source: https://example.com/key
                compression: gzip
              clevis:
                tang:
                  - url: https://tang.example
                    thumbprint: T
                    advertisement: "{}"
                tpm2: true
                threshold: 2
    """))
    assert warns == []
    assert out["storage"]["luks"] == [{
        "clevis": {"tang": [{"advertisement": "{}", "thumbprint": "T", "url": "https://tang.example"}],
                   "threshold": 2, "tpm2": True},
        "device": "/dev/vdb", "discard": True,
        "keyFile": {"compression": "gzip", "source": "https://example.com/key"},
        "label": "data", "name": "data", "openOptions": ["--allow-discards"],
        "options": ["--cipher", "aes-cbc-essiv:sha256"],
        "uuid": "11111111-2222-3333-4444-555555555555", "wipeVolume": True}]


@pytest.mark.parametrize(("snippet", "message", "where"), [
    ("luks:\n    - name: a/b\n      device: /dev/vdb", "device names cannot contain slashes",
     "$.storage.luks.0.name"),
    ("luks:\n    - name: a\n      device: /dev/vdb\n      clevis:\n        custom:\n          pin: sss\n"
     "          config: x\n        tpm2: true",
     "cannot use custom clevis config with tpm2, tang, or threshold", "$.storage.luks.0.clevis.custom"),
    ("luks:\n    - name: a\n      device: /dev/vdb\n      clevis:\n        custom:\n          pin: foo\n"
     "          config: x", "unsupported clevis pin", "$.storage.luks.0.clevis.custom.pin"),
    ("raid:\n    - name: md0\n      level: raid0\n      devices: [/dev/a, /dev/b]\n      spares: 1",
     "spares unsupported for linear and raid0 arrays", "$.storage.raid.0.spares"),
    ("raid:\n    - name: md0\n      level: raid7\n      devices: [/dev/a]", "unrecognized raid level",
     "$.storage.raid.0.level"),
    ("disks:\n    - device: /dev/vda\n      partitions:\n        - number: 1\n        - number: 1",
     "partition numbers collide", "$.storage.disks.0.partitions.1"),
    ("disks:\n    - device: /dev/vda\n      partitions:\n        - label: a\n        - label: a",
     "cannot use the same partition label twice", "$.storage.disks.0.partitions.1"),
    # Ignition's Disk.Validate: at the partition placed over another, and at the list
    ("disks:\n    - device: /dev/vda\n      partitions:\n        - number: 1\n          start_mib: 10\n"
     "          size_mib: 10\n        - number: 2\n          start_mib: 15\n          size_mib: 10",
     "partitions overlap", "$.storage.disks.0.partitions.1"),
    ("disks:\n    - device: /dev/vda\n      partitions:\n        - number: 1\n          should_exist: false\n"
     "        - label: z",
     "shouldExist is false for a partition and other partition(s) has start or size 0",
     "$.storage.disks.0.partitions"),
    ("disks:\n    - device: vda\n      partitions:\n        - number: 1", "path not absolute",
     "$.storage.disks.0.device"),
    ("disks:\n    - device: /dev/vda\n      partitions:\n        - size_mib: 5",
     "a partition number >= 1 or a label must be specified", "$.storage.disks.0.partitions.0"),
    ("filesystems:\n    - device: /dev/vdb\n      format: ext9", "invalid filesystem format",
     "$.storage.filesystems.0.format"),
    ("filesystems:\n    - device: /dev/vdb\n      path: /srv", "format cannot be empty when path, label, uuid, "
     "wipeFilesystem, options, or mountOptions is specified", "$.storage.filesystems.0"),
    ("filesystems:\n    - device: /dev/vdb\n      format: xfs\n      path: srv", "path not absolute",
     "$.storage.filesystems.0.path"),
    ("directories:\n    - path: d", "path not absolute", "$.storage.directories.0.path"),
    ("links:\n    - path: l\n      target: /x", "path not absolute", "$.storage.links.0.path"),
    ("links:\n    - path: /l", "link target is required", "$.storage.links.0"),
    ("directories:\n    - path: /d\n      mode: 01000000", "illegal file mode", "$.storage.directories.0.mode"),
    ("directories:\n    - path: /d\n  links:\n    - path: /d\n      target: /x", "duplicate entry defined",
     "$.storage.links.0"),
    ("files:\n    - path: /a\n      user:\n        id: 1\n        name: x", "cannot set both id and name",
     "$.storage.files.0.user.id"),
])
def test_storage_validation_table(snippet: str, message: str, where: str) -> None:
    entries = errors(header("1.5.0") + "storage:\n  " + snippet + "\n")
    assert any(e.startswith(f"error at {where},") and e.endswith(message) for e in entries), entries


def test_raid_and_partitions_table() -> None:
    out, _ = run(header("1.2.0") + textwrap.dedent("""\
        storage:
          disks:
            - device: /dev/vda
              wipe_table: false
              partitions:
                - number: 5
                  label: data
                  guid: 8A7A6E26-5E8F-4CCA-A654-46215D4696AC
                  wipe_partition_entry: true
                  should_exist: true
                  resize: true
                - number: 6
                  should_exist: false
          raid:
            - name: data
              level: raid10
              devices: [/dev/vdb, /dev/vdc, /dev/vdd, /dev/vde]
              spares: 1
              options: [--chunk=512]
    """))
    assert out["storage"] == {
        "disks": [{"device": "/dev/vda", "partitions": [
            {"guid": "8A7A6E26-5E8F-4CCA-A654-46215D4696AC", "label": "data", "number": 5, "resize": True,
             "shouldExist": True, "wipePartitionEntry": True},
            {"number": 6, "shouldExist": False}], "wipeTable": False}],
        "raid": [{"devices": ["/dev/vdb", "/dev/vdc", "/dev/vdd", "/dev/vde"], "level": "raid10", "name": "data",
                  "options": ["--chunk=512"], "spares": 1}]}


# ---------------------------------------------------------------- passwd / systemd / unused keys

@pytest.mark.parametrize(("body", "where"), [
    ("passwd:\n  users:\n    - name: a\n    - name: a\n", "$.passwd.users.1"),
    ("passwd:\n  groups:\n    - name: g\n    - name: g\n", "$.passwd.groups.1"),
    ("systemd:\n  units:\n    - name: a.service\n      dropins:\n        - name: x.conf\n        - name: x.conf\n",
     "$.systemd.units.0.dropins.1"),
    ("storage:\n  filesystems:\n    - device: /dev/a\n      format: xfs\n    - device: /dev/a\n      format: ext4\n",
     "$.storage.filesystems.1"),
    ("storage:\n  luks:\n    - name: a\n      device: /dev/x\n    - name: a\n      device: /dev/y\n",
     "$.storage.luks.1"),
    ("storage:\n  raid:\n    - name: m\n      level: raid1\n      devices: [/dev/a]\n"
     "    - name: m\n      level: raid1\n      devices: [/dev/b]\n", "$.storage.raid.1"),
    ("storage:\n  disks:\n    - device: /dev/a\n    - device: /dev/a\n", "$.storage.disks.1"),
])
def test_duplicate_entries_table(body: str, where: str) -> None:
    entries = errors(header("1.4.0") + body)
    assert any(e.startswith(f"error at {where},") and e.endswith("duplicate entry defined") for e in entries), entries


@pytest.mark.parametrize(("body", "where", "key"), [
    ("storage:\n  files:\n    - path: /a\n      contents:\n        inlin: x\n", "$.storage.files.0.contents.inlin",
     "inlin"),
    ("passwd:\n  users:\n    - name: a\n      ssh_keys: [x]\n", "$.passwd.users.0.ssh_keys", "ssh_keys"),
    ("boot_device:\n  luks:\n    tmp2: true\n", "$.boot_device.luks.tmp2", "tmp2"),
    ("grub:\n  users:\n    - name: root\n", "$.grub", "grub"),
    ("kernel_arguments:\n  should_exist: [a]\n", "$.kernel_arguments", "kernel_arguments"),
])
def test_unused_keys_table(body: str, where: str, key: str) -> None:
    version = "1.3.0" if key in ("kernel_arguments",) else "1.4.0"
    _, warns = run(header(version) + body)
    assert any(w.startswith(f"warning at {where},") and w.endswith(f"unused key {key}") for w in warns), warns


def test_kernel_arguments_and_users_full() -> None:
    out, _ = run(header("1.4.0") + textwrap.dedent("""\
        kernel_arguments:
          should_exist: [console=ttyS0, "mitigations=auto,nosmt"]
          should_not_exist: [quiet]
        passwd:
          users:
            - name: u
              uid: 1001
              gecos: User
              home_dir: /home/u
              no_create_home: false
              primary_group: g
              groups: [wheel]
              no_user_group: true
              no_log_init: true
              shell: /bin/bash
              system: false
              password_hash: $y$x
              should_exist: true
          groups:
            - name: g
              gid: 1001
              password_hash: "*"
              system: true
              should_exist: true
    """))
    assert out["kernelArguments"] == {"shouldExist": ["console=ttyS0", "mitigations=auto,nosmt"],
                                      "shouldNotExist": ["quiet"]}
    assert out["passwd"] == {
        "groups": [{"gid": 1001, "name": "g", "passwordHash": "*", "shouldExist": True, "system": True}],
        "users": [{"gecos": "User", "groups": ["wheel"], "homeDir": "/home/u", "name": "u", "noCreateHome": False,
                   "noLogInit": True, "noUserGroup": True, "passwordHash": "$y$x", "primaryGroup": "g",
                   "shell": "/bin/bash", "shouldExist": True, "system": False, "uid": 1001}]}


def test_grub_users_multiple() -> None:
    out, _ = run(header("1.5.0") + textwrap.dedent("""\
        grub:
          users:
            - name: root
              password_hash: grub.pbkdf2.sha512.10000.A
            - name: admin
              password_hash: grub.pbkdf2.sha512.10000.B
    """))
    storage = out["storage"]
    assert storage["filesystems"] == [{"device": "/dev/disk/by-label/boot", "format": "ext4", "path": "/boot"}]
    assert storage["files"][0]["path"] == "/boot/grub2/user.cfg"
    append = storage["files"][0]["append"][0]
    assert append["compression"] == "gzip" and append["source"].startswith("data:;base64,H4sI")
    assert gzip.decompress(base64.b64decode(append["source"].split(",", 1)[1])).decode() == (
        "# Generated by Butane\n\nset superusers=\"root admin\"\n"
        "password_pbkdf2 root grub.pbkdf2.sha512.10000.A\npassword_pbkdf2 admin grub.pbkdf2.sha512.10000.B\n")
