#!/usr/bin/env bash
# Tests of the Windows workflow that can run on Linux:
#   1. the PowerShell syntax check of scripts/*.ps1 and *.psm1 (tree-sitter PowerShell grammar,
#      pinned in scripts/requirements-ps1-check.txt, installed into windbg/.venv),
#   2. node's test runner over windbg/test/: the WinDbg JavaScript extension
#      windbg/WrFastMutex.js against a fake data model of the seed's dump, its
#      ECMAScript 2015 check (acorn, pinned in windbg/package-lock.json), static
#      checks of the PowerShell scripts and debugger command files, and the
#      syntax checker itself on deliberately broken scripts.
# Needs node >= 20 and npm; installs the rest itself (Python venv via apt-get if
# it is missing and we are root). Exits non-zero on any failure. The output ends
# with node's test summary.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
ACORN_VERSION="8.19.0"
VENV="$HERE/.venv"
REQUIREMENTS="$REPO/scripts/requirements-ps1-check.txt"

say() { printf '==> %s\n' "$*"; }

apt_install() {
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "windbg/test.sh: need the Debian packages: $* (run as root or install them)" >&2
        exit 1
    fi
    say "apt-get install -y $*"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# --- node and the pinned npm package ------------------------------------------
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "windbg/test.sh: node (>= 20) and npm are required" >&2
    exit 1
fi
NODE_MAJOR="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$NODE_MAJOR" -lt 20 ]; then
    echo "windbg/test.sh: node >= 20 is required, found $(node --version)" >&2
    exit 1
fi
installed_acorn="$(cd "$HERE" && node -p 'try { require("acorn/package.json").version } catch (e) { "" }')"
if [ "$installed_acorn" != "$ACORN_VERSION" ]; then
    say "npm ci in windbg/ (acorn $ACORN_VERSION)"
    (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
fi

# --- Python venv with the pinned PowerShell parser ------------------------------
if ! command -v python3 >/dev/null 2>&1; then
    apt_install python3 python3-venv
fi
if [ ! -x "$VENV/bin/python" ]; then
    say "python3 -m venv windbg/.venv"
    if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
        rm -rf "$VENV"
        apt_install python3-venv
        python3 -m venv "$VENV"
    fi
fi
if ! "$VENV/bin/python" - "$REQUIREMENTS" <<'PY' >/dev/null 2>&1
import sys
from importlib.metadata import version
wanted = dict(line.strip().split("==") for line in open(sys.argv[1]) if "==" in line)
sys.exit(0 if all(version(name) == v for name, v in wanted.items()) else 1)
PY
then
    say "pip install -r scripts/requirements-ps1-check.txt (binary wheels only)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --only-binary=:all: -r "$REQUIREMENTS"
fi

# --- 1. PowerShell syntax --------------------------------------------------------
say "PowerShell syntax check of scripts/*.ps1 and *.psm1"
"$VENV/bin/python" "$REPO/scripts/check-ps1-syntax.py" "$REPO/scripts"

# --- 2. node tests (last: the output ends with node's summary) -------------------
say "node --test windbg/test/"
cd "$REPO"
PS1_CHECK_PYTHON="$VENV/bin/python" node --test windbg/test/
