#!/usr/bin/env bash
# The seed's WinDbg walk-through with lldb-19 on a minidump of the process that
# hosts TestDriver.sys (lldb/analyze.py; lldb/README.md). Usage and exit codes:
# bash linux/analyze-dump.sh --help.
set -euo pipefail
case ${1:-} in
  -h|--help) exec python3 "$(dirname "$0")/../lldb/analyze.py" --help ;;
esac
source "$(dirname "$0")/env.sh"
ensure_debian_packages dump
exec python3 "$REPO_ROOT/lldb/analyze.py" "$@"
