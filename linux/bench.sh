#!/usr/bin/env bash
# Benchmarks (numbers, not tests): the Linux build of TestDriver.sys cold (an
# empty target directory; crates already downloaded) beside its floor, then
# warm (src/lib.rs touched), the size of both .sys images, then the emulated
# runs (emulator/bench.py: wall time, peak RSS and API calls per second), then
# the fixed build under Wine (prefix creation, time to RUNNING, to the 1000th
# file).
#   linux/bench.sh [--skip-build | --build-only]
# The floor: a cold build of an empty #![no_std] cdylib for the same target
# with the same build-std crates (core, alloc, compiler_builtins), in the
# release profile the driver had before its dependencies got their own (LTO,
# one codegen unit, full debuginfo for every crate). Builds print wall and CPU
# (user + sys) seconds, and the load average before them says whether other
# work shared the cores.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$REPO_ROOT"

skip_build=false build_only=false
for arg in "$@"; do
  case $arg in
    --skip-build) skip_build=true ;;
    --build-only) build_only=true ;;
    *) echo "bench.sh: unknown argument '$arg' (expected --skip-build or --build-only)" >&2; exit 2 ;;
  esac
done
if $skip_build && $build_only; then
  echo "bench.sh: --skip-build and --build-only exclude each other" >&2
  exit 2
fi

ensure_debian_packages

# Runs a command quietly, its output kept in a log for a failure; prints
# "WALL CPU" in seconds (CPU: user + sys of the command and its children).
timed() {
  local log=$1 TIMEFORMAT='%R %U %S' times
  shift
  if ! times=$({ time "$@" >"$log" 2>&1; } 2>&1); then
    tail -n 20 "$log" >&2
    echo "bench.sh: failed: $* (log: $log)" >&2
    exit 1
  fi
  awk '{ printf "%.1f %.1f", $1, $2 + $3 }' <<<"$times"
}

# The floor crate. Its profile stays what it is whatever the driver's becomes.
write_floor_crate() {
  mkdir -p "$1/src"
  cat >"$1/Cargo.toml" <<'EOF'
[package]
name = "floor"
version = "0.0.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[profile.release]
panic = "abort"
lto = true
codegen-units = 1
debug = "full"

[workspace]
EOF
  # As the driver's build script does: no C runtime (crt-static asks for libcmt).
  cat >"$1/build.rs" <<'EOF'
fn main() {
    println!("cargo::rustc-cdylib-link-arg=/NODEFAULTLIB");
}
EOF
  cat >"$1/src/lib.rs" <<'EOF'
#![no_std]

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

#[unsafe(no_mangle)]
pub extern "system" fn _DllMainCRTStartup(_: *mut u8, _: u32, _: *mut u8) -> i32 {
    1
}
EOF
}

if ! $skip_build; then
  bench_dir=$REPO_ROOT/target/bench
  rm -rf "$bench_dir"
  mkdir -p "$bench_dir"
  "$CARGO" fetch "${LINUX_CARGO_ARGS[@]}" >/dev/null 2>&1
  write_floor_crate "$bench_dir/floor"
  echo "build: load average $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores before the builds"
  # The floor has its own cargo settings (no patch, no lock file of the
  # driver's); the repository's .cargo/config.toml (crt-static) applies to
  # both, read from here.
  floor=$(timed "$bench_dir/floor.log" "$CARGO" build "${DRIVER_CARGO_ARGS[@]}" --release \
    --manifest-path "$bench_dir/floor/Cargo.toml" --target-dir "$bench_dir/floor/target")
  build=("$CARGO" build "${LINUX_CARGO_ARGS[@]}" "${DRIVER_CARGO_ARGS[@]}" --release
    --target-dir "$bench_dir/driver")
  cold=$(timed "$bench_dir/cold.log" "${build[@]}")
  touch src/lib.rs
  warm=$(timed "$bench_dir/warm.log" "${build[@]}")
  read -r floor_wall floor_cpu <<<"$floor"
  read -r cold_wall cold_cpu <<<"$cold"
  echo "build: floor (empty no_std cdylib, build-std) cold $floor_wall s wall, $floor_cpu s CPU"
  echo "build: TestDriver.sys cold $cold_wall s wall, $cold_cpu s CPU; warm ${warm%% *} s wall (release)"
  awk -v cw="$cold_wall" -v fw="$floor_wall" -v cc="$cold_cpu" -v fc="$floor_cpu" \
    'BEGIN { printf "build: cold / floor %.2fx wall, %.2fx CPU\n", cw / fw, cc / fc }'
  rm -rf "$bench_dir"
fi

bash linux/build.sh >/dev/null 2>&1
bash linux/build.sh --fixed >/dev/null 2>&1
echo "size: TestDriver.sys $(stat -c %s out/TestDriver.sys) bytes (default)," \
  "$(stat -c %s out/fixed/TestDriver.sys) bytes (fixed)"
! $build_only || exit 0

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
