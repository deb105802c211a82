"""coreos/butane's per-spec translate tables for fcos 1.4.0, 1.5.0 and 1.7.0, re-expressed as tables.

Sources (coreos/butane): config/fcos/v1_4/translate_test.go, config/fcos/v1_5/translate_test.go,
config/fcos/v1_7/translate_test.go (TestTranslateBootDevice, TestTranslateGrub), the root partition
table of config/fcos/v1_6+ (TestRootPartitionConstraints), base/v0_8_exp (quadlets), and the
fcos validate.go rules of Butane v0.29.0 (layout with mirror, mirror disks and reuse by label).
Each spec's table is the same shape with that spec's Ignition version and features: 1.4.0 has no
LUKS ``discard`` or Tang ``advertisement`` (1.5.0+), no s390x layouts or CEX (1.6.0+). Butane's Go
tables run translation without validation; here the whole pipeline runs, so a mirror without
``layout`` (an error from 1.7.0) is given ``layout: x86_64``, which renders the same partitions.
Expected values are written from the Go tables, not produced by this implementation.
"""

from __future__ import annotations

import base64
import gzip
import json
import textwrap
import urllib.parse
from typing import Any

import pytest

from butane import ButaneError, transpile
from tests.test_butane_tables import BOOT_DEVICE_CASES, ROOT_WITHOUT_NUMBER

IGNITION = {"1.4.0": "3.3.0", "1.5.0": "3.4.0", "1.6.0": "3.5.0", "1.7.0": "3.6.0",
            "1.8.0-experimental": "3.7.0-experimental"}
MINOR = {version: int(version.split(".")[1]) for version in IGNITION}
WRONG_NUMBER = "incorrect partition number; a new partition will be created using reserved label"
REUSE_BY_LABEL = ("partitions cannot be reused by label; number must be specified except on boot disk "
                  "(/dev/disk/by-id/coreos-boot-disk) or when wipe_table is true")
LAYOUT_NEEDED = "boot_device.layout should be specified when boot_device.mirror is specified"
ROOT_CONSTRAINED = ("root partition cannot expand; it is set to fill available space but is followed by an "
                    "auto-positioned partition")


def run(text: str, **kwargs: object) -> tuple[dict[str, Any], list[str]]:
    out, warns = transpile(textwrap.dedent(text), **kwargs)  # type: ignore[arg-type]
    return json.loads(out), warns


def messages(lines: list[str]) -> list[tuple[str, str]]:
    """(path, message) of report lines ``warning at $.a.b, line L col C: message``."""
    out = []
    for line in lines:
        where, _, message = line.partition(": ")
        out.append((where.split(" at ", 1)[1].split(",", 1)[0], message))
    return out


def header(version: str) -> str:
    return f"variant: fcos\nversion: {version}\n"


def _needs(body: str) -> int:
    """The first fcos minor version whose schema has every key the case uses."""
    if "s390x" in body or "cex:" in body:
        return 6
    if "discard:" in body or "advertisement:" in body:
        return 5
    return 4


BOOT_DEVICE_BY_VERSION = [
    pytest.param(version, case.values[0], case.values[1], id=f"{version}-{case.id}")
    for version in ("1.4.0", "1.5.0", "1.7.0", "1.8.0-experimental")
    for case in BOOT_DEVICE_CASES
    if MINOR[version] >= _needs(str(case.values[0]))
] + [
    # v1_4's LUKS case: the same as v1_5+'s without `discard`
    pytest.param("1.4.0", "boot_device:\n  luks:\n    tang:\n      - url: https://example.com/\n"
                 "        thumbprint: z\n    threshold: 2\n    tpm2: true\n",
                 {"luks": [{"clevis": {"tang": [{"thumbprint": "z", "url": "https://example.com/"}],
                                       "threshold": 2, "tpm2": True},
                            "device": "/dev/disk/by-partlabel/root", "label": "luks-root", "name": "root",
                            "wipeVolume": True}],
                  "filesystems": [{"device": "/dev/mapper/root", "format": "xfs", "label": "root",
                                   "wipeFilesystem": True}]},
                 id="1.4.0-luks-tang-tpm2-threshold"),
]


@pytest.mark.parametrize(("version", "body", "storage"), BOOT_DEVICE_BY_VERSION)
def test_boot_device_table_per_spec(version: str, body: str, storage: dict[str, Any]) -> None:
    mirror_without_layout = "mirror:" in body and "layout:" not in body
    if mirror_without_layout and MINOR[version] >= 7:
        body = body.replace("boot_device:\n", "boot_device:\n  layout: x86_64\n", 1)
    out, warns = run(header(version) + body)
    assert messages(warns) == ([("$.boot_device.mirror", LAYOUT_NEEDED)] if mirror_without_layout
                               and MINOR[version] < 7 else [])
    assert out == {"ignition": {"version": IGNITION[version]}, "storage": storage}


@pytest.mark.parametrize("version", ["1.7.0", "1.8.0-experimental"])
def test_mirror_without_layout_is_an_error_from_1_7(version: str) -> None:
    with pytest.raises(ButaneError) as info:
        transpile(header(version) + "boot_device:\n  mirror:\n    devices: [/dev/vda, /dev/vdb]\n")
    assert messages(info.value.entries) == [("$.boot_device.mirror", LAYOUT_NEEDED)]
    assert info.value.summary == "source config is invalid"


@pytest.mark.parametrize("version", ["1.4.0", "1.5.0", "1.7.0"])
def test_root_label_without_number_warns_per_spec(version: str) -> None:
    # every spec's table: "partition number for the `root` label is incorrect"
    out, warns = run(header(version) + ROOT_WITHOUT_NUMBER)
    assert out["storage"]["disks"] == [{"device": "/dev/vda", "partitions": [
        {"label": "root", "resize": True, "sizeMiB": 12000}, {"label": "var-home", "sizeMiB": 10240}]}]
    assert out["storage"]["filesystems"] == [{"device": "/dev/disk/by-partlabel/var-home", "format": "xfs",
                                              "label": "var-home", "path": "/var/home", "wipeFilesystem": False}]
    reuse = [("$.storage.disks.0.partitions.0.number", REUSE_BY_LABEL),
             ("$.storage.disks.0.partitions.1.number", REUSE_BY_LABEL)] if MINOR[version] >= 6 else []
    assert messages(warns) == reuse + [("$.storage.disks.0.partitions.0.label", WRONG_NUMBER)]


def test_mirror_disks_are_not_reused_by_label() -> None:
    # Butane v0.29.0 (fedora-coreos-docs storage example): disks listed in boot_device.mirror get
    # a new partition table, so their unnumbered partitions are not a reuse by label
    body = ("boot_device:\n  layout: x86_64\n  mirror:\n    devices: [/dev/sda, /dev/sdb]\n"
            "storage:\n  disks:\n    - device: /dev/sda\n      partitions:\n        - label: root-1\n"
            "          size_mib: 10240\n        - label: var-1\n    - device: /dev/sdc\n      partitions:\n"
            "        - label: data\n")
    _, warns = run(header("1.7.0") + body)
    assert messages(warns) == [("$.storage.disks.1.partitions.0.number", REUSE_BY_LABEL)]


def _root_disk(*partitions: str) -> str:
    # on the boot disk, where unnumbered partitions are not "reused by label" (a source warning
    # that Butane's translation-only Go table does not see)
    lines = ["storage:", "  disks:", "    - device: /dev/disk/by-id/coreos-boot-disk", "      partitions:"]
    for partition in partitions:
        fields = partition.split(",")
        lines.append(f"        - {fields[0]}")
        lines += [f"          {field}" for field in fields[1:]]
    return "\n".join(lines) + "\n"


# TestRootPartitionConstraints (fcos v1_6+): (partitions, expected warning key, message)
ROOT_CASES = [
    pytest.param(_root_disk("label: root,number: 4,size_mib: 0", "label: data,start_mib: 0"),
                 [("$.storage.disks.0.partitions.0.label", ROOT_CONSTRAINED)], id="constrained-by-auto-positioned"),
    pytest.param(_root_disk("label: root,number: 4,size_mib: 0,start_mib: 2048", "label: var,start_mib: 0"),
                 [("$.storage.disks.0.partitions.0.label", ROOT_CONSTRAINED)], id="constrained-explicit-root-start"),
    pytest.param(_root_disk("label: root,number: 4,size_mib: 0,start_mib: 2048", "label: data,start_mib: 10240"),
                 [], id="not-constrained-explicit-start-after"),
    pytest.param(_root_disk("label: root,number: 4,size_mib: 0,start_mib: 2048", "label: var,start_mib: 0",
                            "label: data,start_mib: 10240"),
                 [("$.storage.disks.0.partitions.0.label", ROOT_CONSTRAINED)], id="constrained-explicit-also"),
    pytest.param(_root_disk("label: root,number: 4,size_mib: 4096"),
                 [("$.storage.disks.0.partitions.0.size_mib", "too small")], id="too-small"),
    pytest.param(_root_disk("label: root,number: 4,size_mib: 8192"), [], id="exactly-8GiB"),
    pytest.param(_root_disk("label: root,number: 4", "label: data"),
                 [("$.storage.disks.0.partitions.0.label", ROOT_CONSTRAINED)], id="constrained-nil-size-nil-start"),
    # the root alone may fill the disk (fedora-coreos-docs storage example)
    pytest.param(_root_disk("label: root,number: 4,size_mib: 0,resize: true"), [], id="alone-fills-disk"),
]


@pytest.mark.parametrize("version", ["1.6.0", "1.7.0", "1.8.0-experimental"])
@pytest.mark.parametrize(("body", "expected"), ROOT_CASES)
def test_root_partition_constraints(version: str, body: str, expected: list[tuple[str, str]]) -> None:
    _, warns = run(header(version) + body)
    got = messages(warns)
    assert [path for path, _ in got] == [path for path, _ in expected]
    for (_, message), (_, expected_message) in zip(got, expected, strict=True):
        if expected_message == "too small":
            assert "8 GiB" in message  # Butane's wording is not known exactly (docs/butane.md)
        else:
            assert message == expected_message


@pytest.mark.parametrize("version", ["1.4.0", "1.5.0"])
def test_root_partition_checks_are_not_in_older_specs(version: str) -> None:
    _, warns = run(header(version) + _root_disk("label: root,number: 4,size_mib: 4096", "label: data,start_mib: 0"))
    assert warns == []


# TestTranslateGrub (v1_5, v1_7): one user gives a plain data URL, two users a gzipped one
GRUB_ONE = ("data:,%23%20Generated%20by%20Butane%0A%0Aset%20superusers%3D%22root%22%0A"
            "password_pbkdf2%20root%20grub.pbkdf2.sha512.10000.874A958E526409...%0A")
GRUB_TWO_TEXT = ('# Generated by Butane\n\nset superusers="root1 root2"\n'
                 "password_pbkdf2 root1 grub.pbkdf2.sha512.10000.874A958E526409...\n"
                 "password_pbkdf2 root2 grub.pbkdf2.sha512.10000.874B829D126209...\n")


@pytest.mark.parametrize("version", ["1.5.0", "1.7.0", "1.8.0-experimental"])
def test_grub_table_per_spec(version: str) -> None:
    one = header(version) + ("grub:\n  users:\n    - name: root\n"
                             "      password_hash: grub.pbkdf2.sha512.10000.874A958E526409...\n")
    out, warns = run(one)
    assert warns == []
    assert out == {"ignition": {"version": IGNITION[version]}, "storage": {
        "files": [{"path": "/boot/grub2/user.cfg", "append": [{"compression": "", "source": GRUB_ONE}]}],
        "filesystems": [{"device": "/dev/disk/by-label/boot", "format": "ext4", "path": "/boot"}]}}
    two = header(version) + ("grub:\n  users:\n    - name: root1\n"
                             "      password_hash: grub.pbkdf2.sha512.10000.874A958E526409...\n"
                             "    - name: root2\n"
                             "      password_hash: grub.pbkdf2.sha512.10000.874B829D126209...\n")
    out, _ = run(two)
    append = out["storage"]["files"][0]["append"][0]
    assert append["compression"] == "gzip"
    assert gzip.decompress(base64.b64decode(append["source"].split(",", 1)[1])).decode() == GRUB_TWO_TEXT


def test_grub_is_unused_before_1_5() -> None:
    _, warns = run(header("1.4.0") + "grub:\n  users:\n    - name: root\n      password_hash: x\n")
    assert messages(warns) == [("$.grub", "unused key grub")]


# base/v0_8_exp quadlets (fcos 1.8.0-experimental)
def _url_text(url: str) -> str:
    return urllib.parse.unquote(url.split(",", 1)[1])


def test_quadlets_become_files_and_template_links() -> None:
    out, warns = run(header("1.8.0-experimental") + textwrap.dedent("""\
        systemd:
          quadlets:
            - name: sleepy.container
              rootful: true
              contents: |
                [Container]
                Image=quay.io/fedora/fedora:latest
            - name: web@.container
              contents: "[Container]\\n"
            - name: web@8080.container
    """))
    assert warns == []
    files = out["storage"]["files"]
    assert [(f["path"], f["mode"], f["contents"]["compression"]) for f in files] == [
        ("/etc/containers/systemd/sleepy.container", 0o644, ""),
        ("/etc/containers/systemd/users/web@.container", 0o644, "")]
    assert _url_text(files[0]["contents"]["source"]) == "[Container]\nImage=quay.io/fedora/fedora:latest\n"
    assert out["storage"]["links"] == [{"path": "/etc/containers/systemd/users/web@8080.container",
                                        "target": "web@.container"}]


@pytest.mark.parametrize(("body", "where"), [
    ("    - name: sleepy.service\n      contents: x\n", "$.systemd.quadlets.0.name"),
    ("    - name: web@1.container\n      contents: x\n", "$.systemd.quadlets.0.contents"),
    ("    - name: a.volume\n      contents: x\n      contents_local: a.volume\n",
     "$.systemd.quadlets.0.contents_local"),
])
def test_quadlet_source_errors(body: str, where: str) -> None:
    with pytest.raises(ButaneError) as info:
        transpile(header("1.8.0-experimental") + "systemd:\n  quadlets:\n" + body, files_dir="/nonexistent")
    assert [path for path, _ in messages(info.value.entries)] == [where]


def test_quadlet_path_taken_by_a_file_is_an_error() -> None:
    with pytest.raises(ButaneError) as info:
        transpile(header("1.8.0-experimental") + "storage:\n  files:\n    - path: /etc/containers/systemd/a.container\n"
                  "systemd:\n  quadlets:\n    - name: a.container\n      rootful: true\n      contents: x\n")
    assert messages(info.value.entries) == [
        ("$.systemd.quadlets.0", "matching filesystem node has existing contents or different type")]


def test_quadlets_are_unused_in_1_7() -> None:
    out, warns = run(header("1.7.0") + "systemd:\n  quadlets:\n    - name: a.container\n      contents: x\n")
    assert messages(warns) == [("$.systemd.quadlets", "unused key quadlets")]
    assert out == {"ignition": {"version": "3.6.0"}}
