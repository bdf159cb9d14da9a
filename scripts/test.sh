#!/usr/bin/env bash
# The whole test suite, from a fresh clone on a fresh machine: system packages, venv, pytest.
#   bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then bash scripts/setup-system.sh; else echo "not root: skipping apt packages" >&2; fi
AIDETECT_EXTRAS=${AIDETECT_EXTRAS:-all} bash scripts/setup-python.sh
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
