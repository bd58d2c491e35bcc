#!/usr/bin/env bash
# Set up (training + conversion/reference dependencies) and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -r requirements-convert.txt
python3 -m pytest -n 2 -q --durations=20 "$@"
