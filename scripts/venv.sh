# shellcheck shell=bash
# Sourced by build.sh and test.sh: make .venv (once, or again when pyproject.toml changed) and enter it.
# Usage: . scripts/venv.sh [EXTRA]   e.g. ". scripts/venv.sh test" installs the test extra too.
extra="${1:-}"
stamp=".venv/.installed${extra:+-$extra}"
if [ ! -x .venv/bin/python ] || [ ! -e "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  python3 -m venv .venv || { echo "error: python3 -m venv failed: install python3-venv (Debian/Ubuntu) and retry" >&2; exit 1; }
  .venv/bin/pip install -q --disable-pip-version-check -e ".${extra:+[$extra]}" || { echo "error: pip install failed (see above)" >&2; exit 1; }
  touch "$stamp"
fi
# shellcheck disable=SC1091
. .venv/bin/activate
