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


def test_one_evaluation_renders_the_same_documents() -> None:
    """render_cluster (every node, one jsonnet evaluation) gives what the one-at-a-time renders give."""
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
