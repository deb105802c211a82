"""The templates render exactly the Butane they rendered before they were made faster (issue 15):
every example config and one using every option, per node and for the cluster ISO."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from tasks.render import cached_cluster_id, cluster_id, render_butane, render_cluster
from tests.render_cases import documents
from tests.tools import REPO


def test_templates_render_what_they_rendered_before() -> None:
    golden = json.loads((REPO / "tests" / "data" / "render-golden.json").read_text())
    rendered = documents(render_butane)
    assert sorted(rendered) == sorted(golden)
    for name, text in golden.items():
        assert rendered[name] == text, name


def test_render_cluster_gives_each_node_its_documents() -> None:
    """render_cluster (what the render task writes) gives every node, and the cluster ISO, its own."""
    from tests.render_cases import AGENT_TOKEN, CLUSTER_ID, TOKEN, cases

    golden = json.loads((REPO / "tests" / "data" / "render-golden.json").read_text())
    for name, inputs in cases().items():
        for per_node in (True, False):
            documents = render_cluster(inputs, TOKEN, AGENT_TOKEN, per_node, CLUSTER_ID)
            for node in inputs["nodes"]:
                assert documents.installed[node["name"]] == golden[f"{name}/{node['name']}/installed"]
                if per_node:
                    assert documents.live[node["name"]] == golden[f"{name}/{node['name']}/live"]
            if not per_node:
                assert documents.live[""] == golden[f"{name}/cluster-live"]


def test_cluster_id_is_kept_under_the_token_version(tmp_path: Path) -> None:
    version, cache = tmp_path / "token-version", tmp_path / "cluster-id"
    version.write_text("v1")
    made = cached_cluster_id("tok", version, cache)
    assert made == cluster_id("tok") and stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert "tok" not in cache.read_text()
    cache.write_text(f"v1 {'e' * 32}\n")  # kept: not computed again
    assert cached_cluster_id("tok", version, cache) == "e" * 32
    version.write_text("v2")  # a new token: a new version
    assert cached_cluster_id("tok2", version, cache) == cluster_id("tok2")


def test_libyaml_emits_what_the_python_emitter_emits() -> None:
    """to_butane_yaml uses libyaml's emitter when PyYAML has it: the same text as the pure-Python one."""
    import yaml

    from tasks import render

    class PythonDumper(yaml.SafeDumper):  # type: ignore[misc]
        pass

    PythonDumper.add_representer(str, render._represent_str)
    awkward = ["plain", "two\nlines\n", "trailing space \n", " leading\n", "tab\there\n", "crlf\r\n", "uni\u00e9\n",
               "nel\u0085x\n", "ls\u2028x\n", "bom\ufeffx", "#comment", "- dash", "yes", "null", "1e3", "0o17",
               "key: value", "'quoted'", '"dq"', "", " ", "\n", "a\n\n\nb\n", "very " * 300, "\x01ctl",
               "emoji \U0001f600\n", "ends\n\n", "ends\n\n\n", "  indented\n  block\n", "x\n  \n", "---\n",
               "...\n", "a: b\nc: d\n",
               "{json: 1}", "[1, 2]", "*alias", "&anchor", "!tag", "%directive", "@at", "`tick`", "? q", "| pipe",
               "> gt", "line\n# comment\n", "trail\t\n", "no newline at end\nsecond", "\t", "\tlead",
               "a\t#b", "x:\ty", "[\t]", "- \t", "in\n\tdented\n", "\t\n\n"]
    for text in awkward:
        document = {"variant": "fcos", "strings": [text], "nested": [{"inline": text}], "numbers": [0, 1.5, None]}
        expected = yaml.dump(document, Dumper=PythonDumper, sort_keys=False, allow_unicode=True, width=1 << 30,
                             default_flow_style=False)
        assert render.to_butane_yaml(document) == expected, document
