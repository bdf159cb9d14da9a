#!/usr/bin/env bash
# Set up and run aidetect from a fresh clone: venv, install, then `aidetect up`
# (trains a model on ../shared/data when none is registered, then serves on 127.0.0.1:8000).
# The base install is all `up` needs; set AIDETECT_EXTRAS (scripts/setup-python.sh) to add extras.
#   bash scripts/up.sh [aidetect up options]
set -euo pipefail
cd "$(dirname "$0")/.."
AIDETECT_EXTRAS=${AIDETECT_EXTRAS-} bash scripts/setup-python.sh
exec .venv/bin/aidetect up "$@"
