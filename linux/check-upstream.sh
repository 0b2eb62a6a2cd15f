#!/usr/bin/env bash
# Lists the newer releases of every version the project pins: the crates of the
# Cargo.toml files, Makefile.toml and the workflow (wdk crates, cargo-wdk,
# cargo-make, ...), the PyPI packages of every requirements*.txt and the npm
# packages of every package.json, asking crates.io, PyPI and the npm registry
# with their own clients (cargo info, pip index versions, npm view). Names the
# pins it cannot check (the WDK version of the workflow: NuGet, LLVM, the Rust
# toolchain, the actions' commit SHAs).
# A script to run before a release, not a test: it reads the registries, whose
# answers change from day to day.
#   bash linux/check-upstream.sh          ask the registries
#   bash linux/check-upstream.sh --list   only list the pins found (no network)
# Exit: 0 nothing newer, 1 newer releases listed, 2 bad usage or a pin file that
# cannot be read, 3 a registry did not answer for some pin (named).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() { sed -n '2,14s/^# \{0,1\}//p' "$0"; }

case "$*" in
  -h|--help) usage; exit 0 ;;
  --list) exec python3 "$here/check-upstream.py" --list ;;
  '') ;;
  *) echo "check-upstream.sh: unknown argument(s): $*" >&2; usage >&2; exit 2 ;;
esac

# shellcheck source=linux/env.sh
source "$here/env.sh"
# cargo (build), python3 with venv and ensurepip (python), npm (test)
ensure_debian_packages build python test

# pip from a venv of its own: Debian's python3 has no pip module.
venv=$REPO_ROOT/target/venv-check-upstream
if [[ ! -x $venv/bin/pip ]]; then
  rm -rf "$venv"
  python3 -m venv "$venv" >&2 || { echo "check-upstream.sh: python3 -m venv $venv failed" >&2; exit 3; }
fi

exec python3 "$here/check-upstream.py" --cargo "$CARGO" --pip "$venv/bin/pip" --npm npm
