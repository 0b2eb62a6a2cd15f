#!/usr/bin/env bash
# Benchmarks (numbers, not tests): the Linux build of TestDriver.sys, cold (an
# empty target directory; crates already downloaded) and warm (src/lib.rs
# touched), the size of both .sys images, then the emulated runs
# (emulator/bench.py: wall time, peak RSS and API calls per second), then the
# fixed build under Wine (prefix creation, time to RUNNING, to the 1000th file).
#   linux/bench.sh [--skip-build]
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$REPO_ROOT"

skip_build=false
for arg in "$@"; do
  case $arg in
    --skip-build) skip_build=true ;;
    *) echo "bench.sh: unknown argument '$arg' (expected --skip-build)" >&2; exit 2 ;;
  esac
done

ensure_debian_packages
seconds() { local start=$EPOCHREALTIME; "$@" >/dev/null 2>&1; echo "$EPOCHREALTIME - $start" | awk '{printf "%.1f", $1 - $3}'; }

if ! $skip_build; then
  bench_dir=target/bench
  rm -rf "$bench_dir"
  "$CARGO" fetch "${LINUX_CARGO_ARGS[@]}" >/dev/null 2>&1
  build=("$CARGO" build "${LINUX_CARGO_ARGS[@]}" "${DRIVER_CARGO_ARGS[@]}" --release --target-dir "$bench_dir")
  cold=$(seconds "${build[@]}")
  touch src/lib.rs
  warm=$(seconds "${build[@]}")
  echo "build: cold $cold s, warm $warm s (release, $(nproc) cores)"
  rm -rf "$bench_dir"
fi

bash linux/build.sh >/dev/null 2>&1
bash linux/build.sh --fixed >/dev/null 2>&1
echo "size: TestDriver.sys $(stat -c %s out/TestDriver.sys) bytes (default)," \
  "$(stat -c %s out/fixed/TestDriver.sys) bytes (fixed)"

python=$(bash emulator/setup.sh) || { echo "bench.sh: emulator/setup.sh failed (above)" >&2; exit 1; }
"$python" emulator/bench.py out/TestDriver.sys

# Under Wine (wine/winerun.py): making the throwaway prefix, sc start to
# RUNNING, sc start to the 1000th file in C:\Temp2 (fixed build, 5 runs in one prefix).
ensure_debian_packages wine
python3 wine/winerun.py bench out/fixed/TestDriver.sys --runs 5

# The full-memory dump of the default build's winedevice.exe under Wine
# (wine/fulldump.c): its size, the time fulldump.exe took, then the time of
# the whole lldb analysis (linux/analyze-dump.sh, lldb-19 started and ended).
ensure_debian_packages dump
dump_dir=$(mktemp -d)
trap 'rm -rf "$dump_dir"' EXIT
# (winerun exits 3, the deadlock: the numbers are what is wanted here)
{ python3 wine/winerun.py run out/TestDriver.sys --dump "$dump_dir/d" || true; } |
  sed -n 's/^Dump: .*(\(.*\)) written in \(.*\) s,.*/wine dump: \1, written in \2 s/p'
start=$EPOCHREALTIME
bash linux/analyze-dump.sh "$dump_dir/d/TestDriver.dmp" >/dev/null 2>&1 || true
echo "$EPOCHREALTIME - $start" | awk '{printf "wine dump: analysed by lldb-19 in %.1f s\n", $1 - $3}'

# tdemu's minidump (tdemu run --dump): its size and the time to write it (collect the state,
# build the stub, write the file), default and fixed builds, then the time lldb-19 takes to
# read it with the seed's walk-through (linux/analyze-dump.sh, lldb-19 started and ended).
tdemu_dumps="$dump_dir/tdemu"
for build in default fixed; do
  sys=out/TestDriver.sys
  [[ $build == fixed ]] && sys=out/fixed/TestDriver.sys
  PYTHONPATH=emulator "$python" -m tdemu run "$sys" --quiet --report-dir "$tdemu_dumps/$build" \
    --dump "$tdemu_dumps/$build/dump/TestDriver.dmp" || true
  "$python" -c 'import json, sys
size, threads, ranges, memory, secs = (json.load(open(sys.argv[1]))["dump"][k]
                                       for k in ("bytes", "threads", "ranges", "memory_bytes", "seconds"))
print(f"tdemu dump ({sys.argv[2]}): {size} bytes ({threads} threads, {ranges} memory ranges of {memory} bytes), "
      f"written in {secs * 1000:.1f} ms")' "$tdemu_dumps/$build/report.json" "$build"
  start=$EPOCHREALTIME
  bash linux/analyze-dump.sh "$tdemu_dumps/$build/dump/TestDriver.dmp" >/dev/null 2>&1 || true
  echo "$EPOCHREALTIME - $start" | awk -v b="$build" '{printf "tdemu dump (%s): analysed by lldb-19 in %.1f s\n", b, $1 - $3}'
done
