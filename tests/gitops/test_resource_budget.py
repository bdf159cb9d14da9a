"""docs/resource-budget.md agrees with gitops/: per-pod requests match the manifests and chart values,
the totals add up, and the total fits the three m1.medium nodes."""

from __future__ import annotations

import re

import pytest
import yaml
from gitops_render import GITOPS, REPO, render

BUDGET = REPO / "docs" / "resource-budget.md"


def _cpu_m(value) -> int:
    value = str(value)
    return int(value[:-1]) if value.endswith("m") else int(float(value) * 1000)


def _mib(value) -> int:
    value = str(value)
    units = {"Mi": 1, "Gi": 1024, "Ki": 1 / 1024}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return round(float(value[: -len(suffix)]) * factor)
    return round(int(value) / 2**20)


def _rows(heading: str) -> list[list[str]]:
    """The table under `heading` as lists of cell strings, header and rule rows dropped."""
    section = BUDGET.read_text().split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    return [[c.strip().strip("*") for c in line.strip("|").split("|")] for line in lines[2:]]


def _pod_requests(objects: list[dict], kind: str, name: str) -> tuple[int, int]:
    """Effective (CPU m, MiB) a pod of kind/name requests, init containers counted as Kubernetes does."""
    obj = next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)
    if kind == "ConfigMap":  # a runner scale set's job pod template (gitops/infrastructure/runners)
        template = yaml.safe_load(obj["data"]["job.yaml"])
    elif kind == "CronJob":
        template = obj["spec"]["jobTemplate"]["spec"]["template"]
    else:
        template = obj["spec"]["template"]
    spec = template["spec"]
    main = [c["resources"]["requests"] for c in spec["containers"]]
    init = [c["resources"]["requests"] for c in spec.get("initContainers", [])]
    cpu = max([sum(_cpu_m(r["cpu"]) for r in main)] + [_cpu_m(r["cpu"]) for r in init])
    mem = max([sum(_mib(r["memory"]) for r in main)] + [_mib(r["memory"]) for r in init])
    return cpu, mem


def _helm_requests(app: str, path: str) -> tuple[int, int]:
    values = yaml.safe_load((GITOPS / "infrastructure/controllers" / f"{app}.yaml").read_text())
    node = values["spec"]["source"]["helm"]["valuesObject"]
    for key in path.split("."):
        node = node[int(key)] if isinstance(node, list) else node[key]  # containers.0.resources
    return _cpu_m(node["requests"]["cpu"]), _mib(node["requests"]["memory"])


def _min_replicas(objects: list[dict], name: str) -> int:
    scaler = next(o for o in objects if o["kind"] == "HTTPScaledObject" and o["metadata"]["name"] == name)
    return scaler["spec"]["replicas"]["min"]


ROWS = [r for r in _rows("Requests at the documented minimum") if r[0] != "Total"]


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_row_matches_its_source(row):
    _, source, pods, cpu, mem, cpu_total, mem_total = row
    pods, cpu, mem = int(pods), int(cpu), int(mem)
    assert (int(cpu_total), int(mem_total)) == (pods * cpu, pods * mem), "row total is not pods x per-pod"
    kind, *where = source.split()
    if kind == "manifest":
        directory, ref = where
        obj_kind, name = ref.split("/")
        objects = render(REPO / directory)
        assert _pod_requests(objects, obj_kind, name) == (cpu, mem)
        if "/overlays/" in directory and obj_kind == "Deployment":  # a CronJob counts while it runs
            assert pods == _min_replicas(objects, name), "pods must be the documented minimum"
    elif kind == "helm":
        assert _helm_requests(*where) == (cpu, mem)
    else:
        assert kind == "estimate", f"unknown source {source!r}"


def test_totals_add_up_and_fit_three_m1_medium():
    total = next(r for r in _rows("Requests at the documented minimum") if r[0] == "Total")
    cpu, mem = int(total[5]), int(total[6])
    assert cpu == sum(int(r[5]) for r in ROWS) and mem == sum(int(r[6]) for r in ROWS)
    capacity = {r[0]: (int(r[1]), int(r[2])) for r in _rows("Capacity")}
    raw = capacity["3 × m1.medium"]
    assert raw == (3 * 2000, 3 * 4096)
    allocatable = capacity["Allocatable to pods"]
    reserved = next(v for k, v in capacity.items() if k.startswith("k3s itself"))
    assert allocatable == (raw[0] - reserved[0], raw[1] - reserved[1])
    assert cpu <= allocatable[0] and mem <= allocatable[1]
    prose = BUDGET.read_text()
    assert f"{cpu}m of {allocatable[0]}m CPU ({round(100 * cpu / allocatable[0])}%)" in prose
    assert f"{mem} of {allocatable[1]} MiB ({round(100 * mem / allocatable[1])}%)" in prose


def test_scaling_headroom_adds_up():
    total = next(r for r in _rows("Requests at the documented minimum") if r[0] == "Total")
    cpu, mem = int(total[5]), int(total[6])
    allocatable = next(r for r in _rows("Capacity") if r[0] == "Allocatable to pods")
    for row in _rows("Scaling headroom"):
        cpu, mem = cpu + int(row[2]), mem + int(row[3])
        assert row[4] == f"{cpu} / {mem}", row[0]
    assert cpu <= int(allocatable[1]) and mem <= int(allocatable[2])


def test_numbers_in_the_prose_are_in_the_tables():
    # A guard against the summary drifting from the table it summarises.
    prose = re.search(r"Everything at its maximum at once still fits \((\d+) of (\d+) MiB\)", BUDGET.read_text())
    last = _rows("Scaling headroom")[-1][4].split(" / ")[1]
    allocatable = next(r for r in _rows("Capacity") if r[0] == "Allocatable to pods")[2]
    assert prose and prose.groups() == (last, allocatable)
