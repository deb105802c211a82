"""Behaviour Butane v0.29.0 added or changed after v0.23.0: spec versions, decoding, Ignition checks, gzip choice."""

from __future__ import annotations

import gzip
import json
import textwrap
from typing import Any

import pytest

from butane import SUPPORTED_VERSIONS, ButaneError, transpile
from butane.dataurl import go_gzip_length, make_data_url

CONTEXT_MISMATCH = ("context tree does not match content tree at {}. Line and column reporting may be "
                    "inconsistent. Unused keys may not be reported.")


def run(text: str, **kwargs: object) -> tuple[dict[str, Any], list[str]]:
    out, warns = transpile(textwrap.dedent(text), **kwargs)  # type: ignore[arg-type]
    return json.loads(out), warns


def failure(text: str, **kwargs: object) -> ButaneError:
    with pytest.raises(ButaneError) as info:
        transpile(textwrap.dedent(text), **kwargs)  # type: ignore[arg-type]
    return info.value


# ---------------------------------------------------------------- versions

@pytest.mark.parametrize(("version", "ignition"), [("1.7.0", "3.6.0"), ("1.8.0-experimental", "3.7.0-experimental")])
def test_new_spec_versions(version: str, ignition: str) -> None:
    out, warns = run(f"variant: fcos\nversion: {version}\n")
    assert (out, warns) == ({"ignition": {"version": ignition}}, [])


@pytest.mark.parametrize("version", ["1.9.0", "1.7.0-experimental", "1.6.0-experimental", "2.0.0"])
def test_unknown_version_names_the_supported_ones(version: str) -> None:
    error = failure(f"variant: fcos\nversion: {version}\n")
    assert str(error).startswith(f"No translator exists for variant fcos with version {version}")
    assert "1.0.0" in str(error) and "1.7.0, 1.8.0-experimental" in str(error)
    assert "\n" not in str(error)
    assert list(SUPPORTED_VERSIONS)[-2:] == ["1.7.0", "1.8.0-experimental"]


# ---------------------------------------------------------------- decoding

def test_null_item_in_scalar_list_is_dropped_empty_string_kept() -> None:
    out, warns = run("""\
        variant: fcos
        version: 1.7.0
        passwd:
          users:
            - name: core
              groups: [wheel, null, "", ~]
        kernel_arguments:
          should_exist:
            -
            - quiet
    """)
    assert warns == []
    assert out["passwd"]["users"] == [{"groups": ["wheel", ""], "name": "core"}]
    assert out["kernelArguments"] == {"shouldExist": ["quiet"]}


def test_null_item_in_mapping_list_is_dropped_with_a_warning() -> None:
    text = """\
        variant: fcos
        version: 1.7.0
        storage:
          files:
            - path: /etc/a
            -
            - path: /etc/b
    """
    out, warns = run(text)
    assert [f["path"] for f in out["storage"]["files"]] == ["/etc/a", "/etc/b"]
    assert warns == ["warning: " + CONTEXT_MISMATCH.format("$.storage.files.1")]
    assert "--strict" in failure(text, strict=True).summary


def test_alias_of_a_mapping_decodes_but_warns() -> None:
    text = """\
        variant: fcos
        version: 1.7.0
        storage:
          directories:
            - &dir
              path: /var/a
              mode: 0700
            - *dir
    """
    out, warns = run(text.replace("- *dir", "- path: /var/b"))
    assert warns == []
    error = failure(text)  # the alias duplicates the path: Ignition rejects it, the warning comes first
    assert error.entries[0] == "warning: " + CONTEXT_MISMATCH.format("$.storage.directories.1")
    assert error.entries[1].endswith("duplicate entry defined")
    # an alias used once, elsewhere, is just a warning (fatal with --strict)
    text = """\
        variant: fcos
        version: 1.7.0
        passwd:
          users:
            - &core
              name: core
        storage:
          files:
            - path: /etc/a
              user: *core
    """
    out, warns = run(text)
    assert out["storage"]["files"] == [{"path": "/etc/a", "user": {"name": "core"}}]
    assert warns == ["warning: " + CONTEXT_MISMATCH.format("$.storage.files.0.user")]
    assert failure(text, strict=True).summary == "Config produced warnings and --strict was specified"


def test_alias_of_a_scalar_and_merge_keys_do_not_warn_about_context() -> None:
    out, warns = run("""\
        variant: fcos
        version: 1.7.0
        x-paths:
          etc: &etc /etc/hostname
        storage:
          files:
            - path: *etc
    """)
    assert out["storage"]["files"] == [{"path": "/etc/hostname"}]
    assert [w.split(": ", 1)[1] for w in warns] == ["unused key x-paths"]


# ---------------------------------------------------------------- Ignition checks on the output

def test_tang_without_thumbprint_is_an_error() -> None:
    error = failure("""\
        variant: fcos
        version: 1.7.0
        storage:
          luks:
            - name: data
              device: /dev/vdb
              clevis:
                tang:
                  - url: https://tang.example.com
    """)
    assert error.entries == ["error at $.storage.luks.0.clevis.tang.0, line 9 col 13: thumbprint is required"]
    assert error.summary == "config generated was invalid"


def test_boot_device_tang_url_and_advertisement_are_checked() -> None:
    error = failure("""\
        variant: fcos
        version: 1.6.0
        boot_device:
          luks:
            tang:
              - url: tftp://tang.example.com
                thumbprint: abc
                advertisement: "{not json"
    """)
    assert [e.split(": ", 1)[1] for e in error.entries] == ["invalid url scheme", "advertisement is not valid JSON"]
    assert error.entries[0].startswith("error at $.boot_device.luks.tang.0.url")


@pytest.mark.parametrize(("inline", "kind", "message"), [
    ('{"ignition": {"version": "3.6.0"}}', None, None),
    ('{"ignition": {"version": "3.1.0"}}', "warning",
     "skipping validation for the merge/replace ignition config due to an unkown version"),
    ("{not json", "error", "config is not valid"),
    ("", "error", "not a config (empty)"),
    ("{}", "error", "invalid config version (couldn't parse)"),
])
def test_inline_merge_config_must_parse_from_1_7(inline: str, kind: str | None, message: str | None) -> None:
    text = f"variant: fcos\nversion: 1.7.0\nignition:\n  config:\n    merge:\n      - inline: '{inline}'\n"
    if kind == "error":
        error = failure(text)
        assert len(error.entries) == 1 and message is not None and message in error.entries[0]
        assert error.entries[0].startswith("error at $.ignition.config.merge.0.inline")
        return
    _, warns = run(text)
    if kind is None:
        assert warns == []
    else:
        assert len(warns) == 1 and message is not None and message in warns[0]
        assert warns[0].startswith("warning at $.ignition.config.merge.0.version")


@pytest.mark.parametrize("inline", ["{not json", '{"ignition": {"version": "3.1.0"}}'])
def test_inline_merge_config_is_not_read_before_1_7(inline: str) -> None:
    text = f"variant: fcos\nversion: 1.6.0\nignition:\n  config:\n    merge:\n      - inline: '{inline}'\n"
    assert run(text)[1] == []


# ---------------------------------------------------------------- gzip or not

# fedora-coreos-docs authentication-08: Butane keeps this percent-encoded (201 characters); Python's
# zlib stream would be short enough for gzip+base64 (196 with the "gzip" word), Go's is not (204).
SSHD_SNIPPET = (b"# Fedora CoreOS disables SSH password login by default.\n# Enable it.\n"
                b"# This file must sort before 40-disable-passwords.conf.\nPasswordAuthentication yes\n")


def test_gzip_choice_uses_go_stream_length() -> None:
    url, compression = make_data_url(SSHD_SNIPPET, None)
    assert compression == "" and url.startswith("data:,%23%20Fedora")
    assert len(url) - len("data:") == 201
    # Go ends with an empty stored block: a sync-flushed zlib stream plus header and trailer
    assert go_gzip_length(SSHD_SNIPPET) > len(gzip.compress(SSHD_SNIPPET, 9))


def test_gzip_still_chosen_for_compressible_data() -> None:
    data = ("[connection]\nid=bond0\ntype=bond\ninterface-name=bond0\n" * 8).encode()
    url, compression = make_data_url(data, None)
    assert compression == "gzip" and url.startswith("data:;base64,H4sI")
    # a user-set compression is kept and never recompressed
    assert make_data_url(data, "gzip")[1] is None


def test_file_where_a_unit_goes_is_an_error() -> None:
    # Ignition's Config.Validate (every 3.x spec): the unit's contents would be written there too
    error = failure("""\
        variant: fcos
        version: 1.7.0
        storage:
          files:
            - path: /etc/systemd/system/a.service.d/x.conf
            - path: /etc/systemd/system/b.service
        systemd:
          units:
            - name: a.service
              dropins:
                - name: x.conf
                  contents: "[Unit]\\n"
            - name: b.service
              enabled: false
    """)
    assert error.entries == [
        "error at $.storage.files.0.path, line 5 col 13: path conflicts with systemd unit or dropin"]
