"""Memory of the detector's processes, measured, for the request-size budget in service/limits.py.

    python bench/serve_memory.py                    # a quick model trained into a temp store
    python bench/serve_memory.py --home ~/.aidetect  # the production model of a store
    python bench/serve_memory.py --max-bytes 8388608 --max-pixels 16000000 --images 8   # the limits to load

Two kinds of figure, written to bench/results/serve_memory.json:
server              `aidetect serve` as deployed with one inference worker (the pod's CPU limit is 1 core):
                    the proportional set size (PSS: shared pages split between the processes that share
                    them, so the sum is what the pod's cgroup is charged) of its whole process tree, idle
                    after a warm-up, and the peak while it answers worst-case batches: every image at the
                    byte and pixel limits, an RGBA PNG (the costliest decode), as many as one request takes
components          each the peak resident set (ru_maxrss) of a fresh Python process:
http_process_mib    what the HTTP process holds idle: LitServe, FastAPI, torch and the records code imported
worker_mib          one inference worker: MLflow and torch imported, EfficientNet-lite0 built, a forward
                    pass at the default batch limit (4) at 256 px, one torch thread (the server's layout)
decode_bytes_per_px the peak growth while decoding the worst image we accept (an RGBA PNG: alpha is
                    flattened onto white) and fitting it to 256 px, divided by its pixel count
service/limits.py keeps the rounded-up figures; tests/gitops checks that they and the deployed limits
fit the pod's memory limit with 30% headroom.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.record import machine, write  # noqa: E402

OUT = ROOT / "bench" / "results" / "serve_memory.json"
DECODE_MP = 12  # big enough that the image, not the interpreter, dominates the growth

PEAK = "import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)"

HTTP = f"""
import service.server, service.routes, service.moderate, service.state, service.records, service.cascade
{PEAK}
"""

WORKER = f"""
import mlflow, torch
torch.set_num_threads(1)
torch.set_grad_enabled(False)
from model.detectors.efficientnet import DetectorSpec, build_network, logits
import service.api
net = build_network(DetectorSpec()).eval()
logits(net, torch.zeros(4, 3, 256, 256))
{PEAK}
"""

DECODE = f"""
import io, resource
from PIL import Image
from model.preprocess import PreprocessConfig, decode_image, fit_to_size, to_array
side = int(({DECODE_MP} * 1e6) ** 0.5)
img = Image.linear_gradient("L").resize((side, side)).convert("RGBA")
buf = io.BytesIO(); img.save(buf, "PNG", compress_level=1); data = buf.getvalue(); del img, buf
cfg = PreprocessConfig(max_pixels=10**9, max_bytes=10**9)
import gc; gc.collect()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
to_array(fit_to_size(decode_image(data, cfg), cfg), cfg)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print((after - before) / (side * side))
"""


def run(code: str) -> float:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def tree_pss(pid: int) -> int:
    """Bytes of PSS of `pid` and every descendant."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
            for t in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (t / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def worst_image(max_bytes: int, max_pixels: int) -> bytes:
    """An RGBA PNG of max_pixels whose size is just under max_bytes: flat, with a band of noise."""
    import numpy as np
    from PIL import Image

    side = int(max_pixels**0.5)
    arr = np.full((side, side, 4), 200, np.uint8)
    rng = np.random.default_rng(0)
    rows = max(1, min(side, int(max_bytes * 0.95) // (side * 4)))
    while True:
        arr[:rows] = rng.integers(0, 256, (rows, side, 4), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr, "RGBA").save(buf, "PNG", compress_level=1)
        if buf.tell() <= max_bytes or rows == 1:
            return buf.getvalue()
        arr[:rows] = 200
        rows = int(rows * 0.9)


def measure_server(home: Path | None, max_bytes: int, max_pixels: int, images: int, rounds: int) -> dict:
    from aidetect.settings import Settings
    from aidetect.testing import servers
    from bench.serve_latency import ensure_model

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=home or Path(tmp))
        uri = ensure_model(settings)
        port = servers.free_port()
        env = {
            "AIDETECT_HOME": str(settings.home),
            "AIDETECT_PORT": str(port),
            "AIDETECT_MODEL_URI": uri,
            "AIDETECT_WORKERS_PER_DEVICE": "1",
            "AIDETECT_MAX_BYTES": str(max_bytes),
            "AIDETECT_MAX_PIXELS": str(max_pixels),
            "AIDETECT_MAX_IMAGES_PER_REQUEST": str(images),
            "AIDETECT_RATE_LIMIT_PER_MINUTE": "100000",
        }
        url = f"http://127.0.0.1:{port}"
        proc = servers.start_ready(servers.aidetect_cmd("serve"), f"{url}/health", env, Path(tmp) / "serve.log", 300)
        try:
            small = worst_image(200_000, 256 * 256)
            for _ in range(8):
                httpx.post(f"{url}/v1/detect", content=small, timeout=60)
            time.sleep(2)
            idle = tree_pss(proc.pid)
            blob = worst_image(max_bytes, max_pixels)
            peak, done = idle, threading.Event()

            def sample():
                nonlocal peak
                while not done.is_set():
                    peak = max(peak, tree_pss(proc.pid))
                    time.sleep(0.02)

            sampler = threading.Thread(target=sample)
            sampler.start()
            statuses = []
            for _ in range(rounds):
                files = [("images", (f"{i}.png", blob, "image/png")) for i in range(images)]
                r = httpx.post(f"{url}/v1/detect/batch", files=files, timeout=600)
                statuses += [x["status"] for x in r.json()["results"]]
            done.set()
            sampler.join()
        finally:
            servers.stop(proc)
    return {
        "idle_mib": round(idle / 2**20, 1),
        "peak_mib": round(peak / 2**20, 1),
        "batch_growth_mib": round((peak - idle) / 2**20, 1),
        "image_bytes": len(blob),
        "image_pixels": int(max_pixels**0.5) ** 2,
        "images_per_request": images,
        "rounds": rounds,
        "statuses": sorted(set(statuses)),
        "workers": 1,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, default=None, help="AIDETECT_HOME with a production model")
    ap.add_argument("--max-bytes", type=int, default=8 * 2**20)
    ap.add_argument("--max-pixels", type=int, default=16_000_000)
    ap.add_argument("--images", type=int, default=8, help="images in one batch request")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    # Components first: a child inherits its parent's peak RSS (Linux keeps ru_maxrss across fork and
    # exec), so they must be measured before this process trains a model or builds big images.
    components = {
        "http_process_mib": round(run(HTTP) / 2**20, 1),
        "worker_mib": round(run(WORKER) / 2**20, 1),
        "decode_bytes_per_px": round(run(DECODE), 2),
        "decode_megapixels": DECODE_MP,
    }
    result = {
        "server": measure_server(args.home, args.max_bytes, args.max_pixels, args.images, args.rounds),
        "components": components,
        **machine(),
    }
    write(OUT, result)


if __name__ == "__main__":
    main()
