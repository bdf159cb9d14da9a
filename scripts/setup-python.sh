#!/usr/bin/env bash
# Creates .venv (Python 3.11) and installs aidetect into it, editable. Idempotent.
#   AIDETECT_EXTRAS=dev (default)  base + the test tools;  AIDETECT_EXTRAS=  base only (what scripts/up.sh uses);
#   AIDETECT_EXTRAS=all            every extra (scripts/test.sh);  or a list, e.g. AIDETECT_EXTRAS=qwen,dev
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
extras=${AIDETECT_EXTRAS-dev}
.venv/bin/python -m pip install -q -e ".${extras:+[$extras]}"
