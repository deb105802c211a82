#!/usr/bin/env bash
# Build the ISOs: set up .venv on first use, then run doit with any arguments (`./build.sh embed`).
set -euo pipefail
cd "$(dirname "$0")"
for tool in gpg gpgv; do
  command -v "$tool" >/dev/null || { echo "error: $tool not found: install GnuPG (apt install gnupg gpgv / dnf install gnupg2)" >&2; exit 1; }
done
. scripts/venv.sh ""  # no extra (and not this script's own arguments)
exec doit "$@"
