#!/usr/bin/env bash
# The main job on Linux: builds TestDriver.sys and runs it in the emulated
# kernel, which shows the seed's deadlock the way the seed's WinDbg session
# does (!WrFastMutex, the blocked threads' stacks, dt nt!_FAST_MUTEX), and
# writes report/report.json, report/report.txt and report/waitgraph.svg.
#
#   linux/demo.sh                   the faithful build: the deadlock
#   linux/demo.sh --order move      FileMoveThread takes the lock first
#   linux/demo.sh --fixed           the fixed build: no deadlock, 1000 files moved
#   linux/demo.sh --allow-recursive-acquire
#                                   the harness ignores the recursive acquire:
#                                   the loops run, at APC_LEVEL
#
# Other arguments go to `tdemu run` (see emulator/README.md). Exits 0 when the
# run shows what it is expected to show: the deadlock for the default build,
# completion for the fixed one or with the recursion switch.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$REPO_ROOT"

build_args=() driver=out/TestDriver.sys expect=deadlock tdemu_args=()
for arg in "$@"; do
  case $arg in
    --fixed) build_args=(--fixed); driver=out/fixed/TestDriver.sys; expect=completed ;;
    --allow-recursive-acquire) tdemu_args+=("$arg"); expect=completed ;;
    -h|--help) sed -n '2,17s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) tdemu_args+=("$arg") ;;
  esac
done

bash linux/build.sh "${build_args[@]}" 2>&1 | grep -E '^(built|error)' >&2 || true
[[ -f $driver ]] || { echo "demo.sh: the build did not produce $driver" >&2; exit 1; }
python=$(bash emulator/setup.sh | tail -n 1)
PYTHONPATH=emulator exec "$python" -m tdemu run "$driver" --expect "$expect" "${tdemu_args[@]}"
