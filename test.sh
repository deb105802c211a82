#!/usr/bin/env bash
# Run the tests: set up .venv with the test extra on first use, then pytest with any arguments.
set -euo pipefail
cd "$(dirname "$0")"
. scripts/venv.sh test
exec python -m pytest "$@"
