#!/usr/bin/env bash
# Benchmarks (numbers, not tests; docs/benchmarks.md keeps them): the build of
# TestDriver.sys cold (crates downloaded) beside its floor, then warm (src/lib.rs
# touched), both .sys sizes, the emulated runs (emulator/bench.py), the fixed build
# under Wine, and the dumps of Wine and tdemu with lldb-19's time to read them.
#   linux/bench.sh [--skip-build | --build-only]
# The floor: an empty #![no_std] cdylib, same target and build-std crates, in the
# release profile the driver had before its dependencies got their own. Builds
# print wall and CPU (user + sys) seconds after the load average before them.
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

# Every group, in one apt-get (the wine group's gcc-mingw-w64 builds out/fulldump.exe).
if $build_only; then ensure_debian_packages build; else ensure_debian_packages build python wine dump; fi

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
  # The floor has no patch or lock file of the driver's; .cargo/config.toml
  # (crt-static) applies to both, read from here.
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

# Wine (wine/winerun.py, fixed build, 5 runs in one prefix): making the prefix, sc
# start to RUNNING, sc start to the 1000th file in C:\Temp2.
python3 wine/winerun.py bench out/fixed/TestDriver.sys --runs 5

# LABEL DUMP: how long linux/analyze-dump.sh takes to read DUMP (lldb-19 started and ended).
analysed() {
  local start=$EPOCHREALTIME
  bash linux/analyze-dump.sh "$2" >/dev/null 2>&1 || true
  awk -v l="$1" -v s="$start" -v e="$EPOCHREALTIME" 'BEGIN { printf "%s: analysed by lldb-19 in %.1f s\n", l, e - s }'
}

# The default build's winedevice.exe dumped under Wine (wine/fulldump.c): its size,
# fulldump.exe's time, then the analysis's.
dump_dir=$(mktemp -d)
trap 'rm -rf "$dump_dir"' EXIT
# (winerun exits 3, the deadlock: the numbers are what is wanted here)
{ python3 wine/winerun.py run out/TestDriver.sys --dump "$dump_dir/d" || true; } |
  sed -n 's/^Dump: .*(\(.*\)) written in \(.*\) s,.*/wine dump: \1, written in \2 s/p'
analysed "wine dump" "$dump_dir/d/TestDriver.dmp"

# tdemu's minidump (tdemu run --dump) of each build: its size, the time to write it,
# then the analysis's.
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
  analysed "tdemu dump ($build)" "$tdemu_dumps/$build/dump/TestDriver.dmp"
done
