"""`revision` pins the hub commit the base model and its tokenizer load from. Tested against the Hugging Face
hub's own cache layout offline (models--org--name/refs and snapshots/<commit>), which is what from_pretrained
reads before it would ever ask the network: two commits of a tiny Qwen2-VL, `main` pointing at the newer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")

REPO = Path(__file__).resolve().parents[3]
OLD, NEW = "a" * 40, "b" * 40

SAVE = """
import sys
from pathlib import Path
from model.qwen import modeling as M
from model.qwen.config import QwenConfig
for out, seed in zip(sys.argv[1::2], sys.argv[2::2]):
    cfg = QwenConfig(base_model="tiny", tiny_seed=int(seed), dtype="float32")
    M.load_base(cfg).save_pretrained(Path(out))
    M.load_tokenizer(cfg).save_pretrained(Path(out))
"""

LOAD = """
import json, sys
from model.qwen import modeling as M
from model.qwen.config import QwenConfig
out = {}
for revision in sys.argv[1:]:
    cfg = QwenConfig(base_model="acme/qwen-tiny", revision=revision or None, dtype="float32")
    model, tok = M.load_base(cfg), M.load_tokenizer(cfg)
    out[revision] = {"first": float(next(model.parameters()).flatten()[0]), "vocab": len(tok)}
print(json.dumps(out))
"""


def python(code: str, *args: str, env: dict | None = None) -> str:
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_revision_loads_that_commit_and_none_loads_main(tmp_path):
    repo = tmp_path / "hub" / "models--acme--qwen-tiny"
    python(SAVE, str(repo / "snapshots" / OLD), "0", str(repo / "snapshots" / NEW), "1")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(NEW)
    (repo / "refs" / "v1").write_text(OLD)
    offline = {"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}

    loaded = json.loads(python(LOAD, "", OLD, "v1", "main", env=offline).strip().splitlines()[-1])
    assert all(v["vocab"] > 1000 for v in loaded.values())  # each Qwen tokenizer came from its snapshot
    first = {k: v["first"] for k, v in loaded.items()}
    assert first[""] != first[OLD]  # the two commits hold different weights: what is loaded tells them apart
    assert first["v1"] == first[OLD]  # a tag resolves through refs/, as on the hub
    assert first["main"] == first[""]  # no revision is the hub's main
