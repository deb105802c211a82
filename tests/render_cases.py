"""Template inputs covering every branch the templates have, for the rendering comparison test
(tests/test_render_output.py) and its recorded output (tests/data/render-golden.json)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from tasks import config
from tests.tools import REPO

TOKEN, AGENT_TOKEN, CLUSTER_ID = "t0k3n-" + "a" * 58, "ag3nt-" + "b" * 58, "c" * 32
KEYS = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGolden0000000000000000000000000000000000000 alice@example.test"]


def _inputs(path: Path) -> dict[str, Any]:
    raw = config.evaluate_jsonnet(path)
    inputs = config.parse(raw, str(path)).template_input()
    inputs["ssh_authorized_keys"] = list(KEYS)
    return inputs


def cases() -> dict[str, dict[str, Any]]:
    """name → template input: the example configs, and one with every option and awkward strings."""
    default = _inputs(REPO / "jsonnet" / "cluster.jsonnet")
    three = _inputs(REPO / "jsonnet" / "examples" / "three-nodes.jsonnet")
    odd = copy.deepcopy(three)
    odd["output"] = "cluster"
    odd["k3s"]["manifests"] = {"demo": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n"}
    odd["k3s"]["version"], odd["k3s"]["channel"] = "v1.33.5+k3s1", None
    odd["k3s"]["install_script_sha256"] = "d" * 64
    odd["k3s"]["server_config"] = {"node-label": ["a=\"quoted\"", "back\\slash", "tab\there", "uni\u00e9\u0085\u0001x"],
                                   "kubelet-arg": [], "debug": True, "v": 2, "node-taint": None,
                                   "etcd": {"x": "y"}}
    odd["k3s"]["agent_config"] = {"with-node-id": True, "node-name": "agent \u00fcml\u007faut"}
    odd["nodes"][1]["network"] = {"interface": "eth1", "address": "fd00::12/64", "gateway": None, "dns": []}
    odd["nodes"][0]["console"] = ["tty0", "ttyS0,115200n8", "hvc0"]
    odd["nodes"][2]["console"] = ["ttyAMA0"]
    odd["install"]["console"] = ["tty1"]
    odd["nodes"][2]["macs"] = ["52:54:00:12:34:56"]
    odd["nodes"][2]["serial"], odd["nodes"][2]["uuid"] = "SN-1", "00000000-0000-0000-0000-000000000001"
    for node, strategy in zip(odd["nodes"], ("fleet_lock", "immediate", "periodic"), strict=True):
        node["updates"] = {**node["updates"], "strategy": strategy, "fleet_lock_url": "http://lock.test:8080"}
    return {"default": default, "three-nodes": three, "every-option": odd}


def documents(render: Any) -> dict[str, str]:
    """Every Butane document of every case, via render(template, cluster, node, tla_vars)."""
    from tasks.render import INSTALLED_TEMPLATE, LIVE_TEMPLATE, node_tokens

    out: dict[str, str] = {}
    for name, inputs in cases().items():
        for node in inputs["nodes"]:
            tla = {**node_tokens(node["role"], TOKEN, AGENT_TOKEN), "cluster_id": CLUSTER_ID}
            out[f"{name}/{node['name']}/installed"] = render(INSTALLED_TEMPLATE, inputs, node["name"], tla)
            out[f"{name}/{node['name']}/live"] = render(LIVE_TEMPLATE, inputs, node["name"], {"cluster_id": CLUSTER_ID})
        out[f"{name}/cluster-live"] = render(LIVE_TEMPLATE, inputs, None, {"cluster_id": CLUSTER_ID})
    return out


def write_golden(path: Path) -> None:
    from tasks.render import render_butane

    path.write_text(json.dumps(documents(render_butane), indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    write_golden(REPO / "tests" / "data" / "render-golden.json")
