#!/usr/bin/env bash
# Build the ISOs: set up .venv on first use, then run doit with any arguments (`./build.sh embed`).
set -euo pipefail
cd "$(dirname "$0")"
command -v gpgv >/dev/null || { echo "error: gpgv not found: install gnupg (apt install gpgv / dnf install gnupg2)" >&2; exit 1; }
. scripts/venv.sh
exec doit "$@"
