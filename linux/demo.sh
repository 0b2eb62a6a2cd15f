#!/usr/bin/env bash
# The main job on Linux: builds TestDriver.sys, then runs it, in the emulated
# kernel (tdemu, the default) or under Wine.
#
#   linux/demo.sh                   the faithful build in the emulated kernel: the deadlock, shown
#                                   as the seed's WinDbg session does (!WrFastMutex, the blocked
#                                   threads' stacks, dt nt!_FAST_MUTEX); report/ gets report.json,
#                                   report.txt and waitgraph.svg
#   linux/demo.sh --order move      FileMoveThread takes the lock first
#   linux/demo.sh --fixed           the fixed build: no deadlock, 1000 files moved
#   linux/demo.sh --allow-recursive-acquire
#                                   the harness ignores the recursive acquire:
#                                   the loops run, at APC_LEVEL
#   linux/demo.sh --dump [--fixed]  as above, and tdemu writes its state as a minidump,
#                                   report/tdemu/TestDriver.dmp (with ntoskrnl.exe, the .sys
#                                   and the .pdb beside it), which lldb-19 then reads as the
#                                   seed's WinDbg session reads its dump (linux/analyze-dump.sh)
#   linux/demo.sh --wine [--fixed]  the real .sys under Wine: sc.exe create/start in a throwaway
#                                   prefix, the files, the threads' stacks (winedbg), sc stop/delete
#   linux/demo.sh --wine --dump [--fixed]
#                                   and, before sc stop, a full-memory dump of its winedevice.exe
#                                   to report/wine/ (with TestDriver.sys/.pdb), then the seed's
#                                   walk-through on it with lldb (linux/analyze-dump.sh)
#
# Other arguments go to `tdemu run` (see emulator/README.md); they are checked
# against its --help (after emulator/setup.sh makes its venv) before anything is built. Exit codes: an emulated run
# exits 0 when it shows what it is expected to show (the deadlock for the
# default build, completion for the fixed one or with the recursion switch);
# a Wine run likewise (with --dump: and the dump's analysis agrees). Bad usage: 2, before anything is built. A failed
# build: 1, and no older .sys is run.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$REPO_ROOT"

usage() { sed -n '2,30s/^# \{0,1\}//p' "$0"; }

wine=false dump=false build_args=() driver=out/TestDriver.sys expect=deadlock tdemu_args=()
for arg in "$@"; do
  case $arg in
    --wine) wine=true ;;
    --dump) dump=true ;;
    --fixed) build_args=(--fixed); driver=out/fixed/TestDriver.sys; expect=completed ;;
    --allow-recursive-acquire) tdemu_args+=("$arg"); expect=completed ;;
    -h|--help) usage; exit 0 ;;
    *) tdemu_args+=("$arg") ;;
  esac
done

# Refuses what `tdemu run` would refuse (an unknown option, a value outside an
# option's choices or of the wrong type, a stray argument) with tdemu's own
# argument parser, so that nothing is built for bad input. tdemu checks the
# rest (e.g. a --fault SPEC) itself.
check_tdemu_args() {
  local py=$1
  shift
  PYTHONPATH=emulator "$py" -c 'import sys
from tdemu.cli import build_parser
build_parser().parse_args(["run", "TestDriver.sys", *sys.argv[1:]])' "$@" || {
    echo "demo.sh: the arguments demo.sh does not take itself go to 'tdemu run', which refuses them (above)" >&2
    return 1
  }
}

if $wine && ((${#tdemu_args[@]})); then
  echo "demo.sh: --wine takes only --fixed and --dump (got: ${tdemu_args[*]})" >&2
  exit 2
fi
if $wine && [[ -d report/wine && ! -w report/wine ]]; then
  echo "demo.sh: report/wine is not writable" >&2
  exit 2
fi
# Every Debian package this run needs, in one apt-get.
groups=(build)
$wine || groups+=(python)
! $wine || groups+=(wine)
! $dump || groups+=(dump)
ensure_debian_packages "${groups[@]}"

log=$(mktemp)
venv_log=$(mktemp)
trap 'rm -f "$log" "$venv_log" "$venv_log.python"' EXIT
venv_pid=
if ! $wine; then
  if ((${#tdemu_args[@]})); then
    # the emulator's environment first: its --help is what checks the arguments
    python=$(bash emulator/setup.sh) || { echo "demo.sh: emulator/setup.sh failed (above)" >&2; exit 1; }
    check_tdemu_args "$python" "${tdemu_args[@]}" || exit 2
  else
    # made while the driver builds, under nice: the build is the longer of the two
    nice -n 10 bash emulator/setup.sh >"$venv_log.python" 2>"$venv_log" &
    venv_pid=$!
  fi
fi
echo "Building $driver with linux/build.sh${build_args[*]:+ ${build_args[*]}}" \
  "(the first build takes one to two minutes on two cores) ..." >&2
if ! bash linux/build.sh "${build_args[@]}" >"$log" 2>&1; then
  tail -n 40 "$log" >&2
  echo "demo.sh: the build failed (the end of its log is above; all of it:" \
    "bash linux/build.sh${build_args[*]:+ ${build_args[*]}}); nothing was run" >&2
  exit 1
fi
grep -E '^built ' "$log" >&2
if [[ -n $venv_pid ]]; then
  status=0
  wait "$venv_pid" || status=$?
  cat "$venv_log" >&2
  if ((status)); then
    echo "demo.sh: emulator/setup.sh failed (above)" >&2
    exit 1
  fi
  python=$(<"$venv_log.python")
  rm -f "$venv_log.python"
fi
rm -f "$log" "$venv_log"
trap - EXIT

if $wine; then
  if ! $dump; then
    exec python3 wine/winerun.py run "$driver" --expect "$expect"
  fi
  rm -rf report/wine
  code=0
  python3 wine/winerun.py run "$driver" --expect "$expect" --dump report/wine || code=$?
  [[ -f report/wine/TestDriver.dmp ]] || exit 1
  echo
  echo "== The seed's WinDbg walk-through on report/wine/TestDriver.dmp with lldb (linux/analyze-dump.sh)"
  verdict=0
  bash linux/analyze-dump.sh report/wine/TestDriver.dmp || verdict=$?
  want=$([[ $expect == deadlock ]] && echo 3 || echo 0)
  ((code == 0 && verdict == want)) || exit 1
  exit 0
fi
if ! $dump; then
  PYTHONPATH=emulator exec "$python" -m tdemu run "$driver" --expect "$expect" "${tdemu_args[@]}"
fi

# --dump: the run as above, then its dump read with lldb-19 (the seed's walk-through); it shows
# what it set out to show when the run did and the dump's verdict agrees (3 deadlock, 0 none).
dump_file=report/tdemu/TestDriver.dmp
rc=0
PYTHONPATH=emulator "$python" -m tdemu run "$driver" --expect "$expect" --dump "$dump_file" "${tdemu_args[@]}" || rc=$?
if ((rc == 2)); then exit 2; fi
if [[ ! -f $dump_file ]]; then
  echo "demo.sh: tdemu wrote no dump ($dump_file)" >&2
  exit 1
fi
echo
echo "== The seed's WinDbg walk-through on $dump_file with lldb (linux/analyze-dump.sh)"
verdict=0
bash linux/analyze-dump.sh "$dump_file" || verdict=$?
want=0
[[ $expect == deadlock ]] && want=3
if ((rc != 0 || verdict != want)); then
  echo "demo.sh: the run exited $rc (0 wanted) and the dump's analysis $verdict ($want wanted)" >&2
  exit 1
fi
exit 0
