#!/usr/bin/env bash
# Create the Python environment the emulator needs (idempotent; quick when already done).
#   bash emulator/setup.sh [VENV_DIR]      default VENV_DIR: <repo>/.venv
# Needs Python >= 3.10 with venv/ensurepip (PYTHON=... to choose one); on Debian it
# installs python3-venv itself (env.sh's `python` group). Prints only the venv's
# python path on stdout; everything else goes to stderr. On failure it says why
# and exits non-zero.
set -euo pipefail
exec 3>&1 1>&2
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
(($# <= 1)) || { echo "setup.sh: usage: bash emulator/setup.sh [VENV_DIR]"; exit 2; }
venv="${1:-$(dirname "$here")/.venv}"
req="$here/requirements.txt"

# Debian's python3 lacks venv/ensurepip until python3-venv is installed.
if [ -z "${PYTHON:-}" ] && [ -e /etc/debian_version ]; then
  # shellcheck source=../linux/env.sh
  source "$here/../linux/env.sh"
  ensure_debian_packages python
fi

py_ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; }
py="${PYTHON:-}"
if [ -n "$py" ]; then
  command -v "$py" >/dev/null || { echo "setup.sh: PYTHON=$py: no such command"; exit 1; }
  py_ok "$py" || { echo "setup.sh: PYTHON=$py is $("$py" -V 2>&1); the emulator needs Python >= 3.10"; exit 1; }
else
  for cand in python3.11 python3 python; do
    if command -v "$cand" >/dev/null 2>&1 && py_ok "$cand"; then
      py="$cand"; break
    fi
  done
  if [ -z "$py" ]; then
    found="$( (python3 -V || python -V) 2>&1 | head -n 1)"
    echo "setup.sh: the emulator needs Python >= 3.10 (found: ${found:-no python3})." \
      "On Debian 12: apt-get install python3 python3-venv (3.11); elsewhere set PYTHON=/path/to/python3.10+"
    exit 1
  fi
fi

# VENV_DIR is the user's: nothing in it is deleted. It must be a venv already, or not exist
# (or be empty); a venv left without pip (made while ensurepip was missing) gets pip added.
if [ -e "$venv" ] && [ ! -f "$venv/pyvenv.cfg" ] && [ -n "$(ls -A "$venv" 2>/dev/null || echo x)" ]; then
  echo "setup.sh: $venv exists and is not a Python venv (no pyvenv.cfg): give a new or empty directory"
  exit 1
fi
if [ -x "$venv/bin/python" ] && ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
  echo "setup.sh: $venv has no pip; adding it with ensurepip"
  if ! "$venv/bin/python" -m ensurepip --default-pip >/dev/null; then
    echo "setup.sh: '$venv/bin/python -m ensurepip' failed (above): remove $venv and run this again" \
      "(Debian: apt-get install python3-venv first)"
    exit 1
  fi
fi
if [ ! -x "$venv/bin/python" ]; then
  existed=0
  [ -e "$venv" ] && existed=1
  if ! "$py" -m venv "$venv"; then
    # only what this run made is removed
    ((existed)) || rm -rf "$venv"
    echo "setup.sh: '$py -m venv $venv' failed (above); it needs the venv and ensurepip modules" \
      "(Debian: apt-get install python3-venv)"
    exit 1
  fi
fi
stamp="$venv/.tdemu-requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  if ! "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$req"; then
    echo "setup.sh: pip could not install emulator/requirements.txt into $venv (above)"
    exit 1
  fi
  echo "$want" > "$stamp"
fi
echo "$venv/bin/python" >&3
