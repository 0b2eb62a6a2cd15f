#!/usr/bin/env bash
# The seed's WinDbg walk-through with lldb-19 on a minidump of the process that
# hosts TestDriver.sys (Wine's winedevice.exe: linux/demo.sh --wine --dump; or
# tdemu's dump of its emulated kernel): wrfastmutex (!WrFastMutex), the first
# waiter's stack (!mex.t), its ExAcquireFastMutex frame and registers
# (.frame /r), the mutex decoded (dt nt!_FAST_MUTEX). See lldb/README.md.
#
#   linux/analyze-dump.sh FILE.dmp [--symbols DIR]...
#
# TestDriver.sys and the TestDriver.pdb matching the dump's CodeView record are
# looked for beside the dump and in each --symbols DIR. Exit codes: 3 the dump
# shows the deadlock (a thread of TestDriver.sys waits in ExAcquireFastMutex),
# 0 it does not, 2 bad input (missing file, not a minidump, truncated, no
# TestDriver.sys module, no matching PDB: a message, nothing written), 1 other.
set -euo pipefail
case ${1:-} in
  -h|--help) sed -n '2,14s/^# \{0,1\}//p' "$0"; exit 0 ;;
esac
source "$(dirname "$0")/env.sh"
ensure_debian_packages dump
exec python3 "$REPO_ROOT/lldb/analyze.py" "$@"
