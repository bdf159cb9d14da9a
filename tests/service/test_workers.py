"""Worker layout: how many inference processes and torch threads `aidetect serve` starts."""

import os

import pytest

from service import workers
from service.workers import available_cpus, cgroup_cpus, inference_layout


@pytest.mark.parametrize(
    ("text", "cpus"),
    [("max 100000", None), ("200000 100000", 2.0), ("150000 100000", 1.5), ("", None), ("x y", None), ("0 1", None)],
)
def test_cgroup_cpu_max_lines(text, cpus):
    assert cgroup_cpus(text) == cpus


@pytest.mark.parametrize(
    ("workers", "threads", "cpus", "want"),
    [
        (0, 0, 1, (1, 1)),
        (0, 0, 2, (2, 1)),  # one single-thread worker per core: the faster layout on 2 cores
        (0, 0, 16, (4, 4)),  # at most 4 workers; the cores are shared out as threads
        (1, 0, 2, (1, 2)),
        (3, 0, 2, (3, 1)),  # more workers than cores still get a thread each
        (2, 5, 2, (2, 5)),  # an operator's numbers win
    ],
)
def test_inference_layout(workers, threads, cpus, want):
    assert inference_layout(workers, threads, cpus) == want


def test_negative_numbers_are_refused():
    with pytest.raises(ValueError, match="0 \\(auto\\) or positive"):
        inference_layout(-1, 0, 2)


def test_a_container_limit_caps_the_cores_the_affinity_mask_shows(tmp_path, monkeypatch):
    mask = len(os.sched_getaffinity(0))
    cpu_max = tmp_path / "cpu.max"
    monkeypatch.setattr(workers, "CGROUP_CPU_MAX", cpu_max)
    assert available_cpus() == mask  # no cgroup file: the mask decides
    cpu_max.write_text("max 100000\n")
    assert available_cpus() == mask
    cpu_max.write_text("50000 100000\n")  # half a core still runs one worker
    assert available_cpus() == 1
    cpu_max.write_text(f"{(mask + 3) * 100000} 100000\n")  # a limit above the mask changes nothing
    assert available_cpus() == mask
