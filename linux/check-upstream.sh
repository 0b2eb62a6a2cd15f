#!/usr/bin/env bash
# Lists the newer releases of every version the project pins, asking crates.io,
# PyPI and npm with their own clients (check-upstream.py says which pins, and
# names those it cannot check). A script to run before a release, not a test:
# the registries' answers change from day to day.
#   bash linux/check-upstream.sh          ask the registries
#   bash linux/check-upstream.sh --list   only list the pins found (no network)
# Exit: 0 nothing newer, 1 newer releases listed, 2 bad usage or a pin file that
# cannot be read, 3 a registry did not answer for some pin (named).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() { sed -n '2,9s/^# \{0,1\}//p' "$0"; }

case "$*" in
  -h|--help) usage; exit 0 ;;
  --list) exec python3 "$here/check-upstream.py" --list ;;
  '') ;;
  *) echo "check-upstream.sh: unknown argument(s): $*" >&2; usage >&2; exit 2 ;;
esac

# shellcheck source=linux/env.sh
source "$here/env.sh"
ensure_debian_packages build python test  # cargo, python3 with venv, npm
# pip from a venv of its own (Debian's python3 has none), with nothing else in it.
venv=$REPO_ROOT/target/venv-check-upstream
ensure_venv "$venv" /dev/null || { echo "check-upstream.sh: could not make $venv (above)" >&2; exit 3; }
exec python3 "$here/check-upstream.py" --cargo "$CARGO" --pip "$venv/bin/pip" --npm npm
