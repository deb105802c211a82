"""Tests for the pure-Python Butane transpiler (butane/).

Expected outputs follow the Butane fcos specs and coreos/butane's own test tables
(base/v0_*/translate_test.go, config/fcos/v1_*/translate_test.go, validate_test.go).
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from butane import ButaneError, transpile
from tests.ignition_root import apply_ignition, scratch_dir
from tests.tools import IN_CI, REPO, require_tool

# Every config a test produces is collected here and checked with ignition-validate.
PRODUCED: list[tuple[str, str]] = []


def bu(text: str, **kwargs: object) -> str:
    """Transpile dedented Butane text, returning the JSON text (and record it)."""
    output, _ = transpile(textwrap.dedent(text), **kwargs)  # type: ignore[arg-type]
    PRODUCED.append((json.loads(output)["ignition"]["version"], output))
    return output


def bu_json(text: str, **kwargs: object) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(bu(text, **kwargs))
    return loaded


def warnings_of(text: str, **kwargs: object) -> list[str]:
    return transpile(textwrap.dedent(text), **kwargs)[1]  # type: ignore[arg-type]


def error_of(text: str, **kwargs: object) -> str:
    with pytest.raises(ButaneError) as info:
        transpile(textwrap.dedent(text), **kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    return message


def decode_data_url(url: str, compression: str = "") -> bytes:
    assert url.startswith("data:")
    meta, _, payload = url[5:].partition(",")
    data = base64.b64decode(payload) if meta.endswith(";base64") else urllib.parse.unquote_to_bytes(payload)
    return gzip.decompress(data) if compression == "gzip" else data


# ---------------------------------------------------------------------------- core path (fcos 1.4.0)

CORE_CONFIG = """\
variant: fcos
version: 1.4.0
passwd:
  users:
    - name: core
      ssh_authorized_keys:
        - ssh-ed25519 AAAA me@host
      groups: [wheel]
storage:
  directories:
    - path: /etc/k3s
      mode: 0750
  files:
    - path: /etc/hostname
      mode: 0644
      contents:
        inline: myhost
    - path: /etc/k3s/config.yaml
      user: {name: core}
      group: {id: 0}
      contents:
        inline: |
          token: abc
  links:
    - path: /etc/localtime
      target: ../usr/share/zoneinfo/UTC
systemd:
  units:
    - name: k3s.service
      enabled: true
      contents: |
        [Unit]
        Description=k3s <&>
        [Install]
        WantedBy=multi-user.target
      dropins:
        - name: 10-env.conf
          contents: |
            [Service]
            Environment=A=b
    - name: docker.service
      mask: true
      enabled: false
"""

CORE_EXPECTED = (
    '{"ignition":{"version":"3.3.0"},'
    '"passwd":{"users":[{"groups":["wheel"],"name":"core","sshAuthorizedKeys":["ssh-ed25519 AAAA me@host"]}]},'
    '"storage":{"directories":[{"path":"/etc/k3s","mode":488}],'
    '"files":[{"path":"/etc/hostname","contents":{"compression":"","source":"data:,myhost"},"mode":420},'
    '{"group":{"id":0},"path":"/etc/k3s/config.yaml","user":{"name":"core"},'
    '"contents":{"compression":"","source":"data:,token%3A%20abc%0A"}}],'
    '"links":[{"path":"/etc/localtime","target":"../usr/share/zoneinfo/UTC"}]},'
    '"systemd":{"units":[{"contents":"[Unit]\\nDescription=k3s \\u003c\\u0026\\u003e\\n[Install]\\n'
    'WantedBy=multi-user.target\\n","dropins":[{"contents":"[Service]\\nEnvironment=A=b\\n",'
    '"name":"10-env.conf"}],"enabled":true,"name":"k3s.service"},'
    '{"enabled":false,"mask":true,"name":"docker.service"}]}}'
)


def test_core_config_exact_output() -> None:
    assert bu(CORE_CONFIG, strict=True) == CORE_EXPECTED


def test_core_config_pretty_is_json_dumps_indent_2() -> None:
    pretty = bu(CORE_CONFIG, pretty=True)
    assert pretty == json.dumps(json.loads(pretty), indent=2, ensure_ascii=False).replace("<", "\\u003c").replace(
        ">", "\\u003e"
    ).replace("&", "\\u0026")
    assert json.loads(pretty) == json.loads(CORE_EXPECTED)


def test_minimal_config_per_version() -> None:
    expected = {"1.0.0": "3.0.0", "1.1.0": "3.1.0", "1.2.0": "3.2.0", "1.3.0": "3.2.0",
                "1.4.0": "3.3.0", "1.5.0": "3.4.0", "1.6.0": "3.5.0"}
    for version, ignition in expected.items():
        assert bu(f"variant: fcos\nversion: {version}\n") == '{"ignition":{"version":"%s"}}' % ignition


def test_empty_storage_is_omitted_and_explicit_false_kept() -> None:
    out = bu_json("""\
        variant: fcos
        version: 1.4.0
        storage:
          files: []
        passwd:
          users:
            - name: a
              no_create_home: false
              uid: 0
    """)
    assert "storage" not in out
    assert out["passwd"]["users"] == [{"name": "a", "noCreateHome": False, "uid": 0}]


def test_user_key_order_follows_ignition_struct() -> None:
    out = bu("""\
        variant: fcos
        version: 1.4.0
        passwd:
          users:
            - uid: 1000
              should_exist: true
              shell: /bin/bash
              ssh_authorized_keys: [k]
              primary_group: g
              password_hash: h
              name: n
              home_dir: /h
              gecos: G
              groups: [x]
              no_create_home: true
              no_log_init: true
              no_user_group: true
              system: true
          groups:
            - system: false
              should_exist: true
              password_hash: p
              name: g
              gid: 5
    """)
    assert out == (
        '{"ignition":{"version":"3.3.0"},"passwd":{"groups":[{"gid":5,"name":"g","passwordHash":"p",'
        '"shouldExist":true,"system":false}],"users":[{"gecos":"G","groups":["x"],"homeDir":"/h","name":"n",'
        '"noCreateHome":true,"noLogInit":true,"noUserGroup":true,"passwordHash":"h","primaryGroup":"g",'
        '"sshAuthorizedKeys":["k"],"shell":"/bin/bash","shouldExist":true,"system":true,"uid":1000}]}}'
    )


# ---------------------------------------------------------------------------- YAML (yaml.v3) semantics

def test_yaml_v3_scalars() -> None:
    out = bu_json("""\
        variant: fcos
        version: 1.4.0
        storage:
          files:
            - path: /a
              mode: 0644
              overwrite: yes
              contents:
                inline: 0x10
            - path: /b
              mode: 0o755
              contents:
                inline: 1.50
            - path: /c
              mode: 0x1ed
              user:
                name: true
    """)
    files = out["storage"]["files"]
    assert [f["mode"] for f in files] == [420, 493, 493]
    assert files[0]["overwrite"] is True
    assert files[0]["contents"]["source"] == "data:,0x10"
    assert files[1]["contents"]["source"] == "data:,1.50"
    assert files[2]["user"] == {"name": "true"}


def test_yaml_quoted_number_into_int_is_error() -> None:
    message = error_of("""\
        variant: fcos
        version: 1.4.0
        storage:
          files:
            - path: /a
              mode: "0644"
    """)
    assert "$.storage.files.0.mode, line 6 col 13" in message
    assert "cannot unmarshal !!str `0644` into int" in message


def test_yaml_quoted_true_into_bool_is_error() -> None:
    message = error_of("""\
        variant: fcos
        version: 1.4.0
        systemd:
          units:
            - name: a.service
              enabled: "true"
    """)
    assert "cannot unmarshal !!str `true` into bool" in message


def test_yaml_syntax_errors_read_as_yaml_v3_words_them() -> None:
    """libyaml parses (yaml.v3 is its port: same wording, and ten times faster than PyYAML's parser);
    every syntax error, a control character included, is one line with its place."""
    import yaml

    if not yaml.__with_libyaml__:
        if IN_CI:
            pytest.fail("CI=true but PyYAML was built without libyaml")
        pytest.skip("PyYAML was built without libyaml")
    message = error_of("variant: fcos\nversion: 1.4.0\na: b: c\n")
    assert message == "error at line 3 col 5: yaml: line 3: mapping values are not allowed in this context"
    assert "control characters are not allowed" in error_of("variant: fcos\nversion: 1.4.0\nk: \x01\n")


def test_yaml_duplicate_key_is_error() -> None:
    message = error_of("""\
        variant: fcos
        version: 1.4.0
        storage:
          files:
            - path: /a
              path: /b
    """)
    assert 'mapping key "path" already defined at line 5' in message
    assert "line 6" in message


def test_yaml_null_means_absent_and_type_mismatch() -> None:
    out = bu_json("""\
        variant: fcos
        version: 1.4.0
        storage:
          files:
            - path: /a
              contents:
                inline: ~
              mode: null
    """)
    assert out["storage"]["files"] == [{"path": "/a"}]
    message = error_of("variant: fcos\nversion: 1.4.0\nstorage:\n  files: 3\n")
    assert "cannot unmarshal !!int `3` into []v0_4.File" in message


def test_yaml_merge_key_applies_and_warns() -> None:
    text = """\
        variant: fcos
        version: 1.4.0
        x-common: &common
          mode: 0600
        storage:
          files:
            - <<: *common
              path: /a
    """
    out = bu_json(text)
    assert out["storage"]["files"] == [{"path": "/a", "mode": 384}]
    warns = warnings_of(text)
    assert any("unused key x-common" in w for w in warns)
    assert any("$.storage.files.0.<<" in w and "unused key <<" in w for w in warns)


def test_only_first_document_is_used() -> None:
    assert bu("variant: fcos\nversion: 1.4.0\n---\nfoo: [\n") == '{"ignition":{"version":"3.3.0"}}'


def test_variant_and_version_errors() -> None:
    assert "error parsing variant; must be specified" in error_of("")
    assert "must be a valid semver" in error_of("variant: fcos\nversion: 1.5\n")
    assert "No translator exists for variant FCOS with version 1.4.0" in error_of("variant: FCOS\nversion: 1.4.0\n")
    assert "No translator exists for variant fcos with version 9.0.0" in error_of("variant: fcos\nversion: 9.0.0\n")


# ---------------------------------------------------------------------------- unused keys / versions

def test_unused_keys_warn_and_strict_fails() -> None:
    text = """\
        variant: fcos
        version: 1.4.0
        storage:
          files:
            - path: /a
              foo: 1
    """
    assert warnings_of(text) == ["warning at $.storage.files.0.foo, line 6 col 7: unused key foo"]
    message = error_of(text, strict=True)
    assert "unused key foo" in message


def test_newer_key_in_older_version_is_unused() -> None:
    text = """\
        variant: fcos
        version: 1.4.0
        systemd:
          units:
            - name: a.service
              contents_local: a.service
    """
    assert warnings_of(text) == ["warning at $.systemd.units.0.contents_local, line 6 col 7: unused key contents_local"]
    assert "kernel_arguments" in warnings_of("variant: fcos\nversion: 1.3.0\nkernel_arguments: {}\n")[0]


# ---------------------------------------------------------------------------- resources / data URLs

def test_data_url_encodings() -> None:
    out = bu_json("""\
        variant: fcos
        version: 1.4.0
        storage:
          files:
            - path: /plain
              contents:
                inline: "a b/c=d\\u00e9~*'()!"
            - path: /empty
              contents:
                inline: ""
            - path: /binary
              contents:
                inline: "\\x01\\x02\\x03\\x04\\x05\\x06\\x07\\x08"
            - path: /big
              contents:
                inline: "%s"
            - path: /usergz
              contents:
                compression: gzip
                inline: "already"
            - path: /remote
              contents:
                source: https://example.com/x
                verification:
                  hash: sha512-%s
              append:
                - inline: appended line
    """ % ("hello world " * 50, "0" * 128))
    files = {f["path"]: f for f in out["storage"]["files"]}
    assert files["/plain"]["contents"] == {"compression": "", "source": "data:,a%20b%2Fc%3Dd%C3%A9~*'()!"}
    assert files["/empty"]["contents"] == {"compression": "", "source": "data:,"}
    assert files["/binary"]["contents"]["source"] == "data:;base64,AQIDBAUGBwg="
    big = files["/big"]["contents"]
    assert big["compression"] == "gzip" and big["source"].startswith("data:;base64,H4sI")
    assert decode_data_url(big["source"], "gzip") == b"hello world " * 50
    assert files["/usergz"]["contents"] == {"compression": "gzip", "source": "data:,already"}
    assert files["/remote"]["contents"] == {
        "source": "https://example.com/x", "verification": {"hash": "sha512-" + "0" * 128}}
    assert files["/remote"]["append"] == [{"compression": "", "source": "data:,appended%20line"}]


def test_too_many_sources() -> None:
    message = error_of("""\
        variant: fcos
        version: 1.4.0
        storage:
          files:
            - path: /a
              contents:
                inline: x
                source: https://example.com
    """)
    assert message.startswith("error at $.storage.files.0.contents.source, line 8")
    assert "only one of the following can be set: inline, local, source" in message


def test_local_files_and_files_dir(tmp_path: Path) -> None:
    (tmp_path / "motd").write_text("hi\n")
    (tmp_path / "keys").write_text("ssh-rsa A\r\n\nssh-rsa B\n")
    (tmp_path / "u.service").write_text("[Service]\nExecStart=/bin/true\n")
    text = """\
        variant: fcos
        version: 1.5.0
        storage:
          files:
            - path: /etc/motd
              contents:
                local: motd
        passwd:
          users:
            - name: core
              ssh_authorized_keys: [ssh-rsa Z]
              ssh_authorized_keys_local: [keys]
        systemd:
          units:
            - name: u.service
              contents_local: u.service
    """
    out = bu_json(text, files_dir=tmp_path)
    assert out["storage"]["files"][0]["contents"] == {"compression": "", "source": "data:,hi%0A"}
    assert out["passwd"]["users"][0]["sshAuthorizedKeys"] == ["ssh-rsa Z", "ssh-rsa A", "ssh-rsa B"]
    assert out["systemd"]["units"][0]["contents"] == "[Service]\nExecStart=/bin/true\n"
    assert "must be specified with -d/--files-dir" in error_of(text)
    escape = text.replace("local: motd", "local: ../motd")
    assert "local file path traverses outside the files directory" in error_of(escape, files_dir=tmp_path)
    both = text.replace("contents_local: u.service", "contents_local: u.service\n              contents: x")
    assert "only one of the following can be set: contents, contents_local" in error_of(both, files_dir=tmp_path)


def test_trees(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "a").mkdir(parents=True)
    (root / "b" / "c").mkdir(parents=True)
    (root / "a" / "x").write_text("x")
    (root / "a.txt").write_text("t")
    (root / "B").write_text("B")
    (root / "_u").write_text("u")
    (root / "b" / "c" / "y").write_text("y")
    (root / "b" / "z").write_text("#!/bin/sh\n")
    os.chmod(root / "b" / "z", 0o755)
    os.symlink("a.txt", root / "lnk")
    out = bu_json("""\
        variant: fcos
        version: 1.4.0
        storage:
          files:
            - path: /opt/a.txt
              mode: 0600
          trees:
            - local: tree
              path: /opt
    """, files_dir=tmp_path)
    files = out["storage"]["files"]
    assert [f["path"] for f in files] == ["/opt/a.txt", "/opt/B", "/opt/_u", "/opt/a/x", "/opt/b/c/y", "/opt/b/z"]
    assert files[0]["mode"] == 384 and files[0]["contents"]["source"] == "data:,t"
    assert files[5]["mode"] == 493 and files[1]["mode"] == 420
    assert out["storage"]["links"] == [{"path": "/opt/lnk", "target": "a.txt"}]


# ---------------------------------------------------------------------------- files, dirs, links validation

def test_decimal_mode_warning() -> None:
    text = """\
        variant: fcos
        version: 1.4.0
        storage:
          files:
            - path: /a
              mode: 644
          directories:
            - path: /d
              mode: 755
    """
    warns = warnings_of(text)
    assert "warning at $.storage.directories.0.mode, line 9 col 13: unreasonable mode" in warns[0]
    assert "warning at $.storage.files.0.mode, line 6 col 13: unreasonable mode" in warns[1]
    assert json.loads(bu(text))["storage"]["files"][0]["mode"] == 644


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("files:\n    - path: a", "$.storage.files.0.path, line 5 col 13: path not absolute"),
        ("files:\n    - path: /a/../b", "path is not fully simplified"),
        ("files:\n    - path: /a\n      mode: 010000", "illegal file mode"),
        ("files:\n    - path: /a\n    - path: /a", "$.storage.files.1, line 6 col 7: duplicate entry defined"),
        ("files:\n    - path: /a\n  links:\n    - path: /a\n      target: /b", "duplicate entry defined"),
        ("files:\n    - path: /a\n      overwrite: true", "overwrite must be false if source is unspecified"),
        ("files:\n    - path: /a\n      contents:\n        compression: zz\n        source: http://x",
         "invalid compression method"),
        ("files:\n    - path: /a\n      contents:\n        source: http://x\n        verification:\n"
         "          hash: md5-00", "unrecognized hash function"),
    ],
)
def test_node_errors(snippet: str, message: str) -> None:
    text = "variant: fcos\nversion: 1.4.0\nstorage:\n  " + snippet + "\n"
    assert message in error_of(text)


def test_hard_link_with_owner_warns() -> None:
    warns = warnings_of("""\
        variant: fcos
        version: 1.4.0
        storage:
          links:
            - path: /a
              target: /b
              hard: true
              user: {id: 0}
    """)
    assert warns and "user/group ignored for hard link" in warns[0]


# ---------------------------------------------------------------------------- systemd

def test_systemd_validation() -> None:
    base = "variant: fcos\nversion: 1.4.0\nsystemd:\n  units:\n"
    assert "invalid systemd unit extension" in error_of(base + "    - name: a.foo\n")
    assert "invalid systemd drop-in extension" in error_of(
        base + "    - name: a.service\n      dropins:\n        - name: x.txt\n")
    assert "invalid unit content: unable to find end of section" in error_of(
        base + "    - name: a.service\n      contents: \"[Unit\"\n")
    assert "$.systemd.units.1, line 6 col 7: duplicate entry defined" in error_of(
        base + "    - name: a.service\n    - name: a.service\n")
    warns = warnings_of(base + "    - name: a.service\n      enabled: true\n      contents: \"[Service]\\n\"\n")
    assert warns == ['warning at $.systemd.units.0.enabled, line 6 col 16: '
                     'unit "a.service" is enabled, but has no install section so enable does nothing']


def test_mount_units() -> None:
    out = bu_json("""\
        variant: fcos
        version: 1.4.0
        storage:
          filesystems:
            - device: /dev/disk/by-label/var-data
              format: xfs
              path: /var/lib/my-data
              with_mount_unit: true
              mount_options: [noatime]
            - device: /dev/vdb1
              format: swap
              with_mount_unit: true
        systemd:
          units:
            - name: var-lib-my\\x2ddata.mount
              dropins:
                - name: x.conf
                  contents: "[Mount]\\n"
    """)
    units = out["systemd"]["units"]
    assert [u["name"] for u in units] == ["var-lib-my\\x2ddata.mount", "dev-vdb1.swap"]
    assert units[0]["contents"] == (
        "# Generated by Butane\n[Unit]\nRequires=systemd-fsck@dev-disk-by\\x2dlabel-var\\x2ddata.service\n"
        "After=systemd-fsck@dev-disk-by\\x2dlabel-var\\x2ddata.service\n\n[Mount]\nWhere=/var/lib/my-data\n"
        "What=/dev/disk/by-label/var-data\nType=xfs\nOptions=noatime\n\n[Install]\nRequiredBy=local-fs.target"
    )
    assert units[0]["enabled"] is True and units[0]["dropins"] == [{"contents": "[Mount]\n", "name": "x.conf"}]
    assert units[1]["contents"] == "# Generated by Butane\n[Swap]\nWhat=/dev/vdb1\n\n[Install]\nRequiredBy=swap.target"
    assert "format is required if with_mount_unit is true" in error_of(
        "variant: fcos\nversion: 1.4.0\nstorage:\n  filesystems:\n    - device: /dev/a\n      with_mount_unit: true\n")


# ---------------------------------------------------------------------------- disks, luks, raid, sugar

def test_disks_luks_raid_kargs() -> None:
    out = bu_json("""\
        variant: fcos
        version: 1.4.0
        kernel_arguments:
          should_exist: [quiet]
          should_not_exist: [debug]
        storage:
          disks:
            - device: /dev/vdb
              wipe_table: true
              partitions:
                - label: data
                  number: 1
                  size_mib: 0
                  start_mib: 0
                  type_guid: 0FC63DAF-8483-4772-8E79-3D69D8477DE4
                  resize: false
          raid:
            - name: md0
              level: raid1
              devices: [/dev/vdc, /dev/vdd]
              spares: 0
          luks:
            - name: data
              device: /dev/disk/by-partlabel/data
              wipe_volume: true
              key_file:
                inline: secret
              clevis:
                custom:
                  pin: tpm2
                  config: "{}"
                  needs_network: false
    """)
    assert out["kernelArguments"] == {"shouldExist": ["quiet"], "shouldNotExist": ["debug"]}
    assert out["storage"]["disks"] == [{"device": "/dev/vdb", "partitions": [
        {"label": "data", "number": 1, "resize": False, "sizeMiB": 0, "startMiB": 0,
         "typeGuid": "0FC63DAF-8483-4772-8E79-3D69D8477DE4"}], "wipeTable": True}]
    assert out["storage"]["raid"] == [{"devices": ["/dev/vdc", "/dev/vdd"], "level": "raid1", "name": "md0",
                                       "spares": 0}]
    assert out["storage"]["luks"] == [{"clevis": {"custom": {"config": "{}", "needsNetwork": False, "pin": "tpm2"}},
                                       "device": "/dev/disk/by-partlabel/data",
                                       "keyFile": {"compression": "", "source": "data:,secret"},
                                       "name": "data", "wipeVolume": True}]


def test_boot_device_luks_only() -> None:
    out = bu("""\
        variant: fcos
        version: 1.4.0
        boot_device:
          luks:
            tpm2: true
    """)
    assert out == (
        '{"ignition":{"version":"3.3.0"},"storage":{"filesystems":[{"device":"/dev/mapper/root","format":"xfs",'
        '"label":"root","wipeFilesystem":true}],"luks":[{"clevis":{"tpm2":true},'
        '"device":"/dev/disk/by-partlabel/root","label":"luks-root","name":"root","wipeVolume":true}]}}'
    )


def test_boot_device_mirror_ppc64le() -> None:
    out = bu_json("""\
        variant: fcos
        version: 1.3.0
        boot_device:
          layout: ppc64le
          mirror:
            devices: [/dev/sda, /dev/sdb]
    """)
    parts = out["storage"]["disks"][0]["partitions"]
    assert [p["label"] for p in parts] == ["prep-1", "reserved-1", "boot-1", "root-1"]
    assert [f["device"] for f in out["storage"]["filesystems"]] == ["/dev/md/md-boot", "/dev/md/md-root"]
    assert "mirroring requires at least two devices" in error_of(
        "variant: fcos\nversion: 1.3.0\nboot_device:\n  mirror:\n    devices: [/dev/sda]\n")
    assert "layout must be one of: aarch64, ppc64le, x86_64" in error_of(
        "variant: fcos\nversion: 1.4.0\nboot_device:\n  layout: sparc\n")


def test_grub_users() -> None:
    out = bu_json("""\
        variant: fcos
        version: 1.5.0
        grub:
          users:
            - name: root
              password_hash: grub.pbkdf2.sha512.10000.AB
        storage:
          files:
            - path: /etc/x
              contents:
                inline: x
    """)
    files = out["storage"]["files"]
    assert [f["path"] for f in files] == ["/boot/grub2/user.cfg", "/etc/x"]
    content = decode_data_url(files[0]["append"][0]["source"], files[0]["append"][0]["compression"])
    assert content == b'# Generated by Butane\n\nset superusers="root"\npassword_pbkdf2 root grub.pbkdf2.sha512.10000.AB\n'
    assert out["storage"]["filesystems"] == [{"device": "/dev/disk/by-label/boot", "format": "ext4", "path": "/boot"}]


# ---------------------------------------------------------------------------- JSON escaping

def test_go_json_escaping() -> None:
    out = bu("""\
        variant: fcos
        version: 1.4.0
        systemd:
          units:
            - name: a.service
              contents: "[Unit]\\nDescription=\\b\\f\\x7f\\u2028 é \\"q\\" \\\\ /\\n"
    """)
    assert '"[Unit]\\nDescription=\\u0008\\u000c\x7f\\u2028 é \\"q\\" \\\\ /\\n"' in out


# ---------------------------------------------------------------------------- CLI

def test_cli(tmp_path: Path) -> None:
    source = tmp_path / "in.bu"
    source.write_text(CORE_CONFIG)
    target = tmp_path / "out.ign"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "butane", "--strict", "-o", str(target), str(source)],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert target.read_text() == CORE_EXPECTED + "\n"
    done = subprocess.run([sys.executable, "-m", "butane", "--pretty"], input=CORE_CONFIG + "foo: 1\n",
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0 and done.stdout.startswith('{\n  "ignition"')
    assert "warning at $.foo, line 44 col 1: unused key foo" in done.stderr
    done = subprocess.run([sys.executable, "-m", "butane", "-s"], input=CORE_CONFIG + "foo: 1\n",
                          capture_output=True, text=True, env=env)
    assert done.returncode == 1 and done.stdout == ""
    assert "--strict" in done.stderr


# ---------------------------------------------------------------------------- performance

def _realistic_config(units: int = 12, files: int = 12) -> str:
    lines = ["variant: fcos", "version: 1.4.0", "passwd:", "  users:"]
    for user in ("core", "ops", "deploy"):
        lines += [f"    - name: {user}", "      groups: [wheel, sudo]", "      ssh_authorized_keys:",
                  f"        - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl {user}"]
    lines += ["storage:", "  directories:", "    - path: /etc/k3s", "      mode: 0755", "  files:"]
    for index in range(files):
        lines += [f"    - path: /usr/local/bin/script-{index}.sh", "      mode: 0755", "      contents:",
                  "        inline: |", "          #!/bin/bash", "          set -euo pipefail",
                  f"          echo 'step {index}' >> /var/log/setup.log", "          systemctl daemon-reload"]
    lines += ["  links:", "    - path: /etc/localtime", "      target: ../usr/share/zoneinfo/UTC",
              "systemd:", "  units:"]
    for index in range(units):
        lines += [f"    - name: setup-{index}.service", "      enabled: true", "      contents: |",
                  "        [Unit]", f"        Description=Setup step {index}", "        After=network-online.target",
                  "        [Service]", "        Type=oneshot", f"        ExecStart=/usr/local/bin/script-{index}.sh",
                  "        [Install]", "        WantedBy=multi-user.target", "      dropins:",
                  "        - name: 10-env.conf", "          contents: |", "            [Service]",
                  "            Environment=STEP=1"]
    return "\n".join(lines) + "\n"


def test_realistic_config_is_fast() -> None:
    text = _realistic_config()
    assert 180 <= text.count("\n") <= 320
    start = time.perf_counter()
    output, warnings = transpile(text, strict=True)
    elapsed = time.perf_counter() - start
    PRODUCED.append(("3.3.0", output))
    assert warnings == []
    assert elapsed < 1.0, f"took {elapsed:.3f}s"


# ---------------------------------------------------------------------------- real Ignition tools

APPLY_CONFIG = """\
variant: fcos
version: 1.4.0
passwd:
  users:
    - name: core
      groups: [wheel]
      ssh_authorized_keys:
        - ssh-ed25519 AAAA core@host
  groups:
    - name: k3s
      gid: 2000
storage:
  directories:
    - path: /etc/k3s
      mode: 0750
      group: {name: k3s}
  files:
    - path: /etc/hostname
      mode: 0644
      contents:
        inline: node1
    - path: /etc/k3s/config.yaml
      mode: 0600
      user: {name: core}
      group: {id: 2000}
      contents:
        inline: |
          token: "s3cr3t"
    - path: /usr/local/bin/hello.sh
      mode: 0755
      contents:
        inline: "%s"
  links:
    - path: /etc/localtime
      target: ../usr/share/zoneinfo/UTC
systemd:
  units:
    - name: hello.service
      enabled: true
      contents: |
        [Service]
        ExecStart=/usr/local/bin/hello.sh
        [Install]
        WantedBy=multi-user.target
      dropins:
        - name: 10-env.conf
          contents: |
            [Service]
            Environment=A=b
    - name: docker.service
      mask: true
""" % ("#!/bin/sh\\n" + "echo hello world\\n" * 30)


def test_apply_with_real_ignition() -> None:
    """Ignition's files stage writes what the transpiled config asks for into a scratch root."""
    output, warnings = transpile(APPLY_CONFIG, strict=True)
    PRODUCED.append(("3.3.0", output))
    # no user core yet: Ignition itself must create it (with useradd) from the config
    accounts = {"passwd": "root:x:0:0:root:/root:/bin/bash\n", "group": "root:x:0:\nwheel:x:10:\nusers:x:100:\n",
                "shadow": "root:*:19000:0:99999:7:::\n", "gshadow": "root:*::\nwheel:*::\nusers:*::\n"}
    with scratch_dir("butane-ign-") as work:
        root = apply_ignition(output, work, accounts=accounts)
        check_applied(root)


def check_applied(root: Path) -> None:
    etc = root / "etc"
    assert (etc / "hostname").read_text() == "node1"
    assert (etc / "hostname").stat().st_mode & 0o7777 == 0o644
    config = etc / "k3s" / "config.yaml"
    assert config.read_text() == 'token: "s3cr3t"\n'
    assert config.stat().st_mode & 0o7777 == 0o600
    passwd = (etc / "passwd").read_text()
    core_uid = int(next(line for line in passwd.splitlines() if line.startswith("core:")).split(":")[2])
    assert (config.stat().st_uid, config.stat().st_gid) == (core_uid, 2000)
    assert (etc / "k3s").stat().st_mode & 0o7777 == 0o750 and (etc / "k3s").stat().st_gid == 2000
    assert "k3s:x:2000:" in (etc / "group").read_text()
    assert "wheel:x:10:core" in (etc / "group").read_text()
    hello = root / "usr" / "local" / "bin" / "hello.sh"
    assert hello.read_text() == "#!/bin/sh\n" + "echo hello world\n" * 30
    assert hello.stat().st_mode & 0o7777 == 0o755
    assert os.readlink(etc / "localtime") == "../usr/share/zoneinfo/UTC"
    keys = root / "home" / "core" / ".ssh" / "authorized_keys.d" / "ignition"
    assert "ssh-ed25519 AAAA core@host" in keys.read_text()
    units = etc / "systemd" / "system"
    assert (units / "hello.service").read_text().startswith("[Service]\nExecStart=/usr/local/bin/hello.sh\n")
    assert (units / "hello.service.d" / "10-env.conf").read_text() == "[Service]\nEnvironment=A=b\n"
    assert os.readlink(units / "docker.service") == "/dev/null"
    preset = (etc / "systemd" / "system-preset" / "20-ignition.preset").read_text()
    assert "enable hello.service" in preset


# ---------------------------------------------------------------------------- vectors from Butane's tables

# base/v0_4/translate_test.go TestTranslateFile: "zzz…" gzips, random bytes base64, "invalid"
# compression keeps the user's value and never recompresses.
ZZZ = "z" * 151
RANDOM = b"\xc0\x9cl\x01\x89i\xa5\xbfW\xe4\x1b\xf4J_\xb79P\xa3#\xa7"


def test_butane_table_file_encodings(tmp_path: Path) -> None:
    (tmp_path / "file-1").write_text("file contents\n")
    (tmp_path / "file-3").write_bytes(RANDOM)
    (tmp_path / "subdir").mkdir()
    (tmp_path / "subdir" / "file-4").write_text("subdir file contents\n")
    out, _ = transpile(textwrap.dedent(f"""\
        variant: fcos
        version: 1.4.0
        storage:
          files:
            - path: /foo
              contents:
                inline: {ZZZ}
              append:
                - local: file-3
                - local: subdir/file-4
                - inline: hello
                  compression: gzip
                - local: file-1
    """), files_dir=tmp_path)
    file = json.loads(out)["storage"]["files"][0]
    assert file["contents"]["compression"] == "gzip"
    assert decode_data_url(file["contents"]["source"], "gzip") == ZZZ.encode()
    assert file["append"] == [
        {"compression": "", "source": "data:;base64,wJxsAYlppb9X5Bv0Sl+3OVCjI6c="},
        {"compression": "", "source": "data:,subdir%20file%20contents%0A"},
        {"compression": "gzip", "source": "data:,hello"},
        {"compression": "", "source": "data:,file%20contents%0A"},
    ]
    # a user-set compression is kept and the data is never recompressed
    from butane.dataurl import make_data_url

    assert make_data_url(ZZZ.encode(), "invalid") == ("data:," + ZZZ, None)
    assert "error at $.storage.files.0.contents.local" in error_of(
        "variant: fcos\nversion: 1.4.0\nstorage:\n  files:\n    - path: /foo\n      contents:\n"
        "        local: file-missing\n", files_dir=tmp_path)
    assert f"open {tmp_path}/file-missing: no such file or directory" in error_of(
        "variant: fcos\nversion: 1.4.0\nstorage:\n  files:\n    - path: /foo\n      contents:\n"
        "        local: file-missing\n", files_dir=tmp_path)


# ---------------------------------------------------------------------------- ignition section

IGNITION_SECTION = """\
variant: fcos
version: 1.1.0
ignition:
  config:
    merge:
      - source: https://example.com/a.ign
        http_headers:
          - name: Authorization
            value: Bearer x
    replace:
      inline: '{"ignition":{"version":"3.1.0"}}'
  proxy:
    http_proxy: http://proxy:3128
    https_proxy: https://proxy:3128
    no_proxy: [localhost]
  security:
    tls:
      certificate_authorities:
        - inline: "-----BEGIN CERTIFICATE-----\\n"
  timeouts:
    http_response_headers: 10
    http_total: 60
"""


def test_ignition_section() -> None:
    assert bu(IGNITION_SECTION) == (
        '{"ignition":{"config":{"merge":[{"httpHeaders":[{"name":"Authorization","value":"Bearer x"}],'
        '"source":"https://example.com/a.ign"}],"replace":{"compression":"",'
        '"source":"data:;base64,eyJpZ25pdGlvbiI6eyJ2ZXJzaW9uIjoiMy4xLjAifX0="}},'
        '"proxy":{"httpProxy":"http://proxy:3128","httpsProxy":"https://proxy:3128","noProxy":["localhost"]},'
        '"security":{"tls":{"certificateAuthorities":[{"compression":"",'
        '"source":"data:,-----BEGIN%20CERTIFICATE-----%0A"}]}},'
        '"timeouts":{"httpResponseHeaders":10,"httpTotal":60},"version":"3.1.0"}}'
    )
    # fcos 1.0.0 has no proxy and no inline/http_headers for config references
    warns = [w for w in warnings_of(IGNITION_SECTION.replace("1.1.0", "1.0.0").replace(
        "      inline: '{\"ignition\":{\"version\":\"3.1.0\"}}'", "      source: https://example.com/r.ign").replace(
        '        - inline: "-----BEGIN CERTIFICATE-----\\n"', "        - source: https://example.com/ca.pem"))]
    assert [w.split(": ", 1)[1] for w in warns] == ["unused key http_headers", "unused key proxy"]
    assert "proxies must be http(s)" in error_of(IGNITION_SECTION.replace("http://proxy", "ftp://proxy"))
    assert "insecure plaintext HTTP proxy" in warnings_of(IGNITION_SECTION.replace("https://proxy", "http://proxy"))[0]


def test_special_mode_bits_warn_before_ignition_3_6() -> None:
    text = "variant: fcos\nversion: 1.4.0\nstorage:\n  directories:\n    - path: /scratch\n      mode: 01777\n"
    new_warning = ("warning at $.storage.directories.0.mode, line 6 col 13: "
                   "setuid/setgid/sticky bits are not supported or functional in spec versions older than 3.6.0")
    assert warnings_of(text) == [new_warning]
    # Butane v0.29.0: Ignition applies the bits only from spec 3.6.0 (fcos 1.7.0)
    assert warnings_of(text.replace("1.4.0", "1.6.0")) == [new_warning]
    assert warnings_of(text.replace("1.4.0", "1.7.0")) == []


def test_kargs_duplicates_and_paths_below_links() -> None:
    message = error_of("variant: fcos\nversion: 1.4.0\nkernel_arguments:\n  should_exist: [a]\n"
                       "  should_not_exist: [a]\n")
    assert message == "error at $.kernel_arguments.should_not_exist.0, line 5 col 22: duplicate entry defined"
    message = error_of("variant: fcos\nversion: 1.4.0\nstorage:\n  files:\n    - path: /l/f\n  links:\n"
                       "    - path: /l\n      target: /x\n")
    assert message == "error at $.storage.files.0, line 5 col 7: file path includes link in config"


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("disks:\n    - device: /dev/vdb\n      partitions:\n        - size_mib: 10",
         "$.storage.disks.0.partitions.0, line 7 col 11: a partition number >= 1 or a label must be specified"),
        ("disks:\n    - device: /dev/vdb\n      partitions:\n        - number: 1\n        - number: 1",
         "partition numbers collide"),
        ("disks:\n    - device: /dev/vdb\n      partitions:\n        - label: x\n          type_guid: nope",
         "$.storage.disks.0.partitions.0.type_guid, line 8 col 22: doesn't match the form"),
        ("raid:\n    - name: md0\n      level: raid9\n      devices: [/dev/a]", "unrecognized raid level"),
        ("raid:\n    - name: md0\n      level: raid0\n      devices: [/dev/a]\n      spares: 1",
         "spares unsupported for linear and raid0 arrays"),
        ("filesystems:\n    - device: /dev/vdb1\n      format: xfs\n      label: much-too-long-label",
         "filesystem labels cannot be longer than 12 characters when using xfs"),
        ("filesystems:\n    - device: /dev/vdb1\n      format: ntfs", "invalid filesystem format"),
        ("filesystems:\n    - device: /dev/vdb1\n      path: /var", "format cannot be empty when path"),
        ("luks:\n    - name: a/b\n      device: /dev/vdb", "device names cannot contain slashes"),
    ],
)
def test_storage_errors(snippet: str, message: str) -> None:
    assert message in error_of("variant: fcos\nversion: 1.4.0\nstorage:\n  " + snippet + "\n")


def test_network_and_disk_config_validates() -> None:
    """A realistic user snippet (NetworkManager profile, data disk, LUKS, RAID) end to end."""
    out = bu_json("""\
        variant: fcos
        version: 1.4.0
        storage:
          disks:
            - device: /dev/disk/by-id/coreos-boot-disk
              wipe_table: false
              partitions:
                - number: 4
                  label: root
                  size_mib: 8192
                  resize: true
                - size_mib: 0
                  label: var
          raid:
            - name: data
              level: raid1
              devices: [/dev/vdb, /dev/vdc]
          luks:
            - name: var
              device: /dev/disk/by-partlabel/var
              clevis:
                tpm2: true
              wipe_volume: true
          filesystems:
            - path: /var
              device: /dev/mapper/var
              format: xfs
              label: var
              wipe_filesystem: true
              with_mount_unit: true
            - path: /var/srv
              device: /dev/md/data
              format: ext4
              with_mount_unit: true
          files:
            - path: /etc/NetworkManager/system-connections/eth0.nmconnection
              mode: 0600
              contents:
                inline: |
                  [connection]
                  id=eth0
                  type=ethernet
                  interface-name=eth0
                  [ipv4]
                  address1=10.10.10.10/24,10.10.10.1
                  dns=10.10.10.1;
                  method=manual
    """)
    assert [u["name"] for u in out["systemd"]["units"]] == ["var.mount", "var-srv.mount"]
    assert "Requires=systemd-fsck@dev-mapper-var.service" in out["systemd"]["units"][0]["contents"]
    nm = out["storage"]["files"][0]
    assert nm["mode"] == 384
    assert decode_data_url(nm["contents"]["source"], nm["contents"]["compression"]).startswith(b"[connection]\nid=eth0")


def test_boot_device_s390x_cex_and_layout_rules() -> None:
    out = bu_json("""\
        variant: fcos
        version: 1.6.0
        boot_device:
          layout: s390x-eckd
          luks:
            device: /dev/dasda
            cex:
              enabled: true
    """)
    assert out["storage"]["luks"] == [{"cex": {"enabled": True}, "device": "/dev/dasda2", "label": "luks-root",
                                       "name": "root", "wipeVolume": True}]
    assert "device name must start with /dev/dasd" in error_of(
        "variant: fcos\nversion: 1.6.0\nboot_device:\n  layout: s390x-eckd\n  luks:\n    device: /dev/sda\n"
        "    tpm2: true\n")
    assert "when using cex the targeted architecture must match s390x" in error_of(
        "variant: fcos\nversion: 1.6.0\nboot_device:\n  luks:\n    cex:\n      enabled: true\n")
    assert "path must be under /etc or /var if with_mount_unit is true" in error_of(
        "variant: fcos\nversion: 1.6.0\nstorage:\n  filesystems:\n    - device: /dev/vdb\n      format: xfs\n"
        "      path: /srv\n      with_mount_unit: true\n")
    warns = warnings_of("variant: fcos\nversion: 1.6.0\nstorage:\n  disks:\n    - device: /dev/vdb\n"
                        "      partitions:\n        - label: data\n")
    assert warns[0].startswith("warning at $.storage.disks.0.partitions.0.number, line 7 col 11: partitions cannot")


# ---------------------------------------------------------------------------- keep this test last

def test_zz_outputs_validate_with_ignition_validate(tmp_path: Path) -> None:
    """Runs last (name order): validate every config produced above.

    Debian's ignition-validate (Ignition 2.14) reads specs up to 3.3.0 only, so the
    3.4.0 - 3.7.0-experimental outputs (fcos 1.5.0 - 1.8.0-experimental) cannot be checked
    with it; those are compared to expected JSON (tests/test_butane_docs.py and the tables).
    """
    require_tool("ignition-validate")
    bu(CORE_CONFIG)  # so the test also checks something when run on its own
    bu(IGNITION_SECTION)
    checked = 0
    for index, (version, output) in enumerate(PRODUCED):
        if tuple(int(x) for x in version.split("-")[0].split(".")) > (3, 3, 0):
            continue
        path = tmp_path / f"c{index}.ign"
        path.write_text(output)
        done = subprocess.run(["ignition-validate", str(path)], capture_output=True, text=True)
        assert done.returncode == 0, f"{output}\n{done.stdout}{done.stderr}"
        checked += 1
    assert checked >= 2
