"""The fixed calibration split: half of the validation split fits calibration and thresholds, the other
half is what evaluation reports on, so ECE and TPR at 1% FPR are measured out of sample.

    thumbs = thumbnails(images)                        # (N, 32*32) from uint8 (N, H, W, 3) arrays
    groups = near_duplicate_groups(thumbs)             # group id per image
    is_cal = calibration_mask([s.path.name for s in samples], groups)

Near-duplicates (32x32 grey correlation >= 0.92, or >= 0.95 mirrored: the data set's own rule) always
land on the same side, so a copy of an image used for calibration is never scored as unseen. The side
is a hash of the group's smallest file name (file names are content hashes), so the split is the same
on every machine and for every model, and does not move when unrelated images are added.
"""

from __future__ import annotations

import hashlib

import numpy as np
from PIL import Image

THUMB = 32
CORR = 0.92  # grey-thumbnail correlation at which two images count as one (data README)
CORR_MIRRORED = 0.95
CAL_FRACTION = 0.5  # share of near-duplicate groups that go to calibration


def thumbnails(images: np.ndarray) -> np.ndarray:
    """Zero-mean, unit-norm 32x32 grey thumbnails, one row per image."""
    out = np.empty((len(images), THUMB * THUMB), dtype=np.float32)
    for i, arr in enumerate(images):
        g = Image.fromarray(np.asarray(arr, dtype=np.uint8)).convert("L").resize((THUMB, THUMB), Image.Resampling.BOX)
        out[i] = np.asarray(g, dtype=np.float32).ravel()
    return _normalise(out)


def _normalise(rows: np.ndarray) -> np.ndarray:
    rows = rows - rows.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norm > 0, norm, 1.0)


def mirrored(thumbs: np.ndarray) -> np.ndarray:
    return thumbs.reshape(-1, THUMB, THUMB)[:, :, ::-1].reshape(len(thumbs), -1)


def near_duplicate_groups(thumbs: np.ndarray, corr: float = CORR, corr_mirrored: float = CORR_MIRRORED) -> np.ndarray:
    """Connected components of the 'near-duplicate' relation; returns a group id (int) per row."""
    n = len(thumbs)
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    flip = mirrored(thumbs)
    for start in range(0, n, 1024):  # blocks keep the n x n correlation matrix out of memory
        block = thumbs[start : start + 1024]
        c = block @ thumbs.T
        cm = block @ flip.T
        ii, jj = np.nonzero((c >= corr) | (cm >= corr_mirrored))
        for i, j in zip(ii + start, jj, strict=True):
            if i < j:
                ri, rj = find(i), find(j)
                if ri != rj:
                    parent[max(ri, rj)] = min(ri, rj)
    return np.array([find(i) for i in range(n)])


def _side(key: str) -> float:
    """A number in [0, 1) fixed by the key alone."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:12], 16) / 16**12


def calibration_mask(names: list[str], groups: np.ndarray, fraction: float = CAL_FRACTION) -> np.ndarray:
    """True for images in the calibration part. A group's side comes from its smallest file name."""
    key: dict[int, str] = {}
    for name, g in zip(names, groups, strict=True):
        key[int(g)] = min(key.get(int(g), name), name)
    return np.array([_side(key[int(g)]) < fraction for g in groups])


def calibration_split(names: list[str], images: np.ndarray, fraction: float = CAL_FRACTION) -> np.ndarray:
    """calibration_mask of images given as uint8 arrays: the one call train and evaluate make."""
    return calibration_mask(names, near_duplicate_groups(thumbnails(images)), fraction)


DESCRIPTION = (
    "fixed calibration split: half of the val split's near-duplicate groups (32x32 grey correlation >= 0.92, "
    "or >= 0.95 mirrored), chosen by a hash of each group's smallest file name, fits calibration and "
    "thresholds; metrics are reported on the other half"
)


def calibration_parts(names: list[str], images: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """(fit mask, report mask, how): the fixed split, or all images for both when a side would lack a label
    (tiny runs), which the returned sentence then says."""
    cal = calibration_split(names, images)
    targets = np.asarray(targets)
    if len(set(targets[cal].tolist())) < 2 or len(set(targets[~cal].tolist())) < 2:
        every = np.ones(len(names), bool)
        return every, every, "in-sample: too few images to keep a calibration half apart"
    return cal, ~cal, DESCRIPTION
