"""A small synthetic manifest for smoke runs and tests: learnable in a few steps, no data needed.

    write_synthetic_manifest(Path("/tmp/syn"))   # -> /tmp/syn/manifest.csv, source "synthetic"
    aidetect qwen train -c configs/qwen2vl_tiny.yaml --manifest /tmp/syn --max-steps 5 --no-register

'real' images are dark noise, 'ai' images bright near-flat colour: a stand-in, not a detector task.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_synthetic_manifest(root: Path, n_per_class: int = 8, size: int = 64, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    rows = ["path,label,source,split,origin"]
    for split in ("train", "val"):
        for label in ("real", "ai"):
            for i in range(n_per_class):
                if label == "real":
                    arr = rng.integers(0, 90, (size, size, 3), dtype=np.uint8)
                else:
                    arr = np.full((size, size, 3), 200, np.uint8) + rng.integers(0, 20, (1, 1, 3), dtype=np.uint8)
                p = Path(root) / split / label / f"{i}.jpg"
                p.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(arr).save(p, quality=90)
                rows.append(f"{p.relative_to(root)},{label},synthetic,{split},synthetic")
    manifest = Path(root) / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest
