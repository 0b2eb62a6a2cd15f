#!/usr/bin/env bash
# Create the Python environment the emulator needs (idempotent; quick when already done).
#   bash emulator/setup.sh [VENV_DIR]      default VENV_DIR: <repo>/.venv
# Needs Python >= 3.10 with venv/ensurepip: Debian's python3 (on Debian it
# installs python3-venv itself, env.sh's `python` group), or PYTHON=... to choose
# one. The venv is made by linux/env.sh's ensure_venv (one freshness rule for
# every venv of the project; nothing in VENV_DIR is deleted). Prints only the
# venv's python path on stdout; everything else goes to stderr. On failure it
# says why and exits non-zero.
set -euo pipefail
exec 3>&1 1>&2
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
(($# <= 1)) || { echo "setup.sh: usage: bash emulator/setup.sh [VENV_DIR]"; exit 2; }
venv="${1:-$(dirname "$here")/.venv}"

# shellcheck source=../linux/env.sh
source "$here/../linux/env.sh"
# Debian's python3 lacks venv/ensurepip until python3-venv is installed.
if [ -z "${PYTHON:-}" ] && [ -e /etc/debian_version ]; then
  ensure_debian_packages python
fi
ensure_venv "$venv" "$here/requirements.txt" || { echo "setup.sh: the emulator's venv $venv is not ready (above)"; exit 1; }
echo "$venv/bin/python" >&3
