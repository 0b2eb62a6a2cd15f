#!/usr/bin/env bash
# Tests of the Windows workflow that can run on Linux:
#   1. the PowerShell syntax check of scripts/*.ps1 and *.psm1 (tree-sitter PowerShell grammar,
#      pinned in scripts/requirements-ps1-check.txt, installed into windbg/.venv),
#   2. one run of node's test runner over windbg/test/*.test.js (the WinDbg JavaScript
#      extension windbg/WrFastMutex.js against a fake data model of the seed's dump, its
#      ECMAScript 2015 check with acorn, pinned in windbg/package-lock.json, the debugger
#      command files) and scripts/test/*.test.js (the PowerShell scripts run under
#      scripts/test/pslite.py against fakes of the cmdlets and programs they call, their
#      form, the syntax checker on deliberately broken scripts, this runner's arguments),
#      and docs/test/*.test.js, the checks of README.md and docs/ (size, links, the
#      [computed] outputs).
# Installs what it needs (Debian's nodejs and npm, python3-venv: linux/env.sh's
# `python` and `test` groups; acorn and the PowerShell parser, pinned) and works
# with node 18 or newer (Debian 12's 18, Debian 13's 20). Exits non-zero on any failure, with its
# cause. The output ends with node's test summary.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: bash windbg/test.sh [--help]

Runs the PowerShell syntax check of scripts/*.ps1 and *.psm1, then node's test
runner over windbg/test/*.test.js, scripts/test/*.test.js and docs/test/*.test.js.
Installs what it needs first (Debian's nodejs, npm and python3-venv; acorn and the PowerShell
parser, pinned). Takes no other arguments.
USAGE
}

# Arguments first: nothing is installed for a mistyped call.
for arg in "$@"; do
    case "$arg" in
        -h|--help) usage; exit 0 ;;
        *) echo "windbg/test.sh: unknown argument '$arg' (it takes none; --help for usage)" >&2; exit 2 ;;
    esac
done

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
ACORN_VERSION="8.19.0"
VENV="$HERE/.venv"
REQUIREMENTS="$REPO/scripts/requirements-ps1-check.txt"

say() { printf '==> %s\n' "$*"; }
die() { echo "windbg/test.sh: $*" >&2; exit 1; }

# shellcheck source=../linux/env.sh
source "$REPO/linux/env.sh"
# The oldest node major: the one env.sh's ensure_debian_packages holds Debian's nodejs to.
NODE_MIN_MAJOR="${DEBIAN_MIN_VERSION[nodejs]:?linux/env.sh sets no DEBIAN_MIN_VERSION[nodejs]}"
ensure_debian_packages python test

# --- node and the pinned npm package ------------------------------------------
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
    || die "node (>= $NODE_MIN_MAJOR) and npm are required (Debian: apt-get install nodejs npm)"
NODE_MAJOR="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$NODE_MAJOR" -lt "$NODE_MIN_MAJOR" ]; then
    die "node >= $NODE_MIN_MAJOR is required (its built-in test runner), found $(node --version) at" \
        "$(command -v node); Debian 12's nodejs is 18 and Debian 13's 20"
fi
installed_acorn="$(cd "$HERE" && node -p 'try { require("acorn/package.json").version } catch (e) { "" }')"
if [ "$installed_acorn" != "$ACORN_VERSION" ]; then
    say "npm ci in windbg/ (acorn $ACORN_VERSION)"
    (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error) \
        || die "npm ci in windbg/ failed (above): the npm registry must be reachable"
fi

# --- Python venv with the pinned PowerShell parser ------------------------------
# (linux/env.sh's ensure_venv: the one freshness rule of the project's venvs)
ensure_venv "$VENV" "$REQUIREMENTS" --only-binary=:all: \
    || die "could not make windbg/.venv with scripts/requirements-ps1-check.txt (above)"

# --- 1. PowerShell syntax --------------------------------------------------------
say "PowerShell syntax check of scripts/*.ps1 and *.psm1"
"$VENV/bin/python" "$REPO/scripts/check-ps1-syntax.py" "$REPO/scripts"

# --- 2. node tests (last: the output ends with node's summary) -------------------
# The files are named, not the folder: node 18 and 20 expand a folder given to
# --test, node 21 and newer do not (they take files or glob patterns).
say "node --test windbg/test/*.test.js scripts/test/*.test.js docs/test/*.test.js"
cd "$REPO"
shopt -s nullglob
WINDBG_TESTS=(windbg/test/*.test.js)
SCRIPTS_TESTS=(scripts/test/*.test.js)
DOCS_TESTS=(docs/test/*.test.js)
shopt -u nullglob
[ "${#WINDBG_TESTS[@]}" -gt 0 ] || die "no test files windbg/test/*.test.js"
[ "${#SCRIPTS_TESTS[@]}" -gt 0 ] || die "no test files scripts/test/*.test.js"
[ "${#DOCS_TESTS[@]}" -gt 0 ] || die "no test files docs/test/*.test.js"
TEST_FILES=("${WINDBG_TESTS[@]}" "${SCRIPTS_TESTS[@]}" "${DOCS_TESTS[@]}")
PS1_CHECK_PYTHON="$VENV/bin/python" node --test "${TEST_FILES[@]}"
