"""docs/gitops.md: the flow diagram is there, and every path and command it names is real."""

from __future__ import annotations

import re

from gitops_render import REPO

DOC = REPO / "docs" / "gitops.md"


def test_flow_diagram_goes_from_pull_request_to_endpoint():
    text = DOC.read_text()
    blocks = re.findall(r"```mermaid\n(.*?)```", text, re.S)
    assert len(blocks) == 1
    flow = blocks[0]
    # `A["label"] -->|text| B[...]`: node ids on both sides of an arrow, shapes and labels skipped.
    edges = re.findall(r"^\s*(\w+)(?:\[[^\]]*\])?\s*-[-.]+>(?:\|[^|]*\|)?\s*(\w+)", flow, re.M)
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)

    def reaches(a: str, b: str) -> bool:
        seen, todo = set(), [a]
        while todo:
            node = todo.pop()
            if node == b:
                return True
            if node not in seen:
                seen.add(node)
                todo += graph.get(node, ())
        return False

    chain = ["PR", "CI", "IMG", "PIN", "ARGO", "PROD", "EP"]
    assert all(reaches(a, b) for a, b in zip(chain, chain[1:], strict=False))
    assert reaches("IMG", "REG")
    for label in ("Pull request", "CI", "GHCR", "Git pin", "ArgoCD sync", "https://"):
        assert label in flow


def test_every_repository_path_in_the_doc_exists():
    text = DOC.read_text()
    paths = set(re.findall(r"`((?:gitops|docs|ci|tests|ansible|\.github)/[\w./-]+?)`", text))
    assert "gitops/clusters/production/root-app.yaml" in paths
    missing = [p for p in sorted(paths) if not (REPO / p).exists()]
    assert not missing, missing


def test_root_app_bootstrap_command_names_the_real_manifest():
    text = DOC.read_text()
    applied = re.findall(r"kubectl apply -f (\S+)", text)
    assert applied and all((REPO / p).is_file() for p in applied)
