"""DDP: the same trainer under torchrun with 2 CPU ranks on gloo stays in sync and reaches the
weights one rank reaches with the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("peft")

from model.qwen.synthetic import write_synthetic_manifest  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
TORCHRUN = Path(sys.executable).with_name("torchrun")


def run_trainer(nproc: int, manifest: Path, state: Path, tmp: Path) -> None:
    sets = {
        "manifest": f'"{manifest}"',
        "train_sources": '["synthetic"]',
        "max_steps": "3",
        "batch_size": "4",
        "grad_accum": "2",  # covers DDP's no_sync on the first micro-batch
        "lr": "0.005",
        "warmup_steps": "1",
        "lora_dropout": "0.0",  # dropout masks would differ per rank
        "max_val_samples": "4",
        "log_every": "0",
    }
    args = [
        str(TORCHRUN),
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "model.qwen.train",
        "--config",
        str(REPO / "configs" / "qwen2vl_tiny.yaml"),
        "--state-out",
        str(state),
    ]
    for k, v in sets.items():
        args += ["--set", f"{k}={v}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
def test_two_gloo_ranks_match_one_rank_with_the_same_global_batch(tmp_path):
    if not TORCHRUN.exists():
        pytest.skip("torchrun not installed beside this Python")
    manifest = write_synthetic_manifest(tmp_path / "data", n_per_class=4)
    run_trainer(1, manifest, tmp_path / "one.pt", tmp_path)
    run_trainer(2, manifest, tmp_path / "two.pt", tmp_path)

    one = torch.load(tmp_path / "one.pt")
    r0 = torch.load(tmp_path / "two.pt.rank0")
    r1 = torch.load(tmp_path / "two.pt.rank1")
    assert one.keys() == r0.keys() == r1.keys() and len(one) > 10

    # in sync: DDP leaves the ranks with bit-identical trainable tensors
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k

    # same trajectory as one rank: the difference is float noise, far below what training moved
    from model.qwen.config import load_config
    from model.qwen.modeling import build_model

    cfg = load_config(REPO / "configs" / "qwen2vl_tiny.yaml", {"lora_dropout": 0.0})
    torch.manual_seed(cfg.seed)
    init = {n: p.detach().clone() for n, p in build_model(cfg).named_parameters() if p.requires_grad}
    moved = sum(float((one[k] - init[k]).norm() ** 2) for k in one) ** 0.5
    apart = sum(float((one[k] - r0[k]).norm() ** 2) for k in one) ** 0.5
    print(f"\nDDP: |1-rank update| = {moved:.4g}, |1-rank - 2-rank| = {apart:.3g}")
    assert moved > 1e-2
    assert apart < 1e-3 * moved
