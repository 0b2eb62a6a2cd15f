#!/usr/bin/env bash
# Create the Python environment the emulator needs (idempotent; quick when already done).
#   bash emulator/setup.sh [VENV_DIR]      default VENV_DIR: <repo>/.venv
# Prints the venv's python path on its last line.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${1:-$(dirname "$here")/.venv}"
req="$here/requirements.txt"
py="${PYTHON:-}"
if [ -z "$py" ]; then
  for cand in python3.11 python3 python; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
      py="$cand"; break
    fi
  done
fi
[ -n "$py" ] || { echo "setup.sh: need Python >= 3.10" >&2; exit 1; }
if [ ! -x "$venv/bin/python" ]; then
  "$py" -m venv "$venv"
fi
stamp="$venv/.tdemu-requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$req"
  echo "$want" > "$stamp"
fi
echo "$venv/bin/python"
