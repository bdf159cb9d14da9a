#!/usr/bin/env bash
# Set up and run aidetect from a fresh clone: venv, install, then `aidetect up`
# (trains a model on ../shared/data when none is registered, then serves on 127.0.0.1:8000).
#   bash scripts/up.sh [aidetect up options]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-python.sh
exec .venv/bin/aidetect up "$@"
