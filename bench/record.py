"""How every benchmark files its result: the machine it ran on beside its figures, as JSON under
bench/results/, and the same JSON on stdout.

    from record import machine, write
    write(OUT, {"server": ..., **machine()})
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path


def machine() -> dict:
    """What a figure needs beside it to be compared with another: Python, CPU kind and count, load."""
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_avg_at_end": os.getloadavg(),
    }


def write(path: Path, result: dict) -> None:
    text = json.dumps(result, indent=2, default=str) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(text, end="")
