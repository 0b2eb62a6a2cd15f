#!/usr/bin/env bash
# Runs every test of the project on a Linux machine, installing what it needs
# (Debian toolchain, the emulator's Python venv, the PowerShell parser):
#   1. builds TestDriver.sys, default and fixed (linux/build.sh);
#   2. clippy on both builds for the Windows target, warnings as errors;
#   3. the driver's unit and layout tests on the host (cargo test), both builds,
#      and the wdk-build stand-in's tests;
#   4. that Cargo.lock (the Windows build's) is up to date;
#   5. the PE checks, the INX check (linux/inxcheck.py), both builds under Wine
#      (sc.exe in a throwaway prefix) and the emulator tests (pytest), the
#      WinDbg extension and PowerShell syntax tests (windbg/test.sh).
# Ends with one line: "all: N passed, M failed".
set -euo pipefail
case $# in
  0) ;;
  *) if [[ $1 == -h || $1 == --help ]]; then sed -n '2,12s/^# \{0,1\}//p' "$0"; exit 0; fi
     echo "test.sh: takes no arguments (got: $*); see bash linux/test.sh --help" >&2; exit 2 ;;
esac
source "$(dirname "$0")/env.sh"
cd "$REPO_ROOT"

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
passed=0 failed=0 step=0

# Runs a step with its output shown and kept, so its counts can be added up.
run() {
  local name=$1; shift
  step=$((step + 1))
  echo "=== $name"
  if ! "$@" 2>&1 | tee "$logs/$step.log"; then
    echo "=== FAILED: $name" >&2
    summarize
    exit 1
  fi
}

count() { # add up the pass/fail counts the runners printed in a log
  read -r p f < <(awk '
    /^test result: /             { for (i = 1; i < NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
    /^# pass [0-9]+$/            { p += $3 }
    /^# fail [0-9]+$/            { f += $3 }
    /^=* *[0-9]+ (passed|failed)/ { for (i = 1; i < NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
    END { print p + 0, f + 0 }' "$1")
  passed=$((passed + p)) failed=$((failed + f))
}

summarize() {
  local log
  for log in "$logs"/*.log; do [[ -e $log ]] && count "$log"; done
  echo "all: $passed passed, $failed failed"
}

ensure_debian_packages build clang python test wine dump

run "build TestDriver.sys (default)" bash linux/build.sh
run "build TestDriver.sys (fixed)" bash linux/build.sh --fixed

for features in "" "--features=fixed"; do
  run "clippy ${features:-default}" "$CARGO" clippy "${LINUX_CARGO_ARGS[@]}" "${DRIVER_CARGO_ARGS[@]}" \
    --release $features -- -D warnings
done

# Host unit tests: the driver crate's build script requires a static C runtime,
# as on Windows; the host target is named so build scripts are not affected.
# MSVC's linker keeps every function of the test binary's own objects and an
# export pulls in what it calls, so GNU ld is told not to drop unused sections
# either: a kernel routine reachable from the tests fails to link here too.
host=x86_64-unknown-linux-gnu
host_rustflags='["-C", "target-feature=+crt-static", "-C", "link-arg=-Wl,--no-gc-sections"]'
for features in "" "--features=fixed"; do
  run "unit tests ${features:-default}" "$CARGO" test "${LINUX_CARGO_ARGS[@]}" --release --lib \
    --target "$host" --config "target.$host.rustflags=$host_rustflags" $features
done
run "wdk-build stand-in tests" "$CARGO" test --release --locked \
  --manifest-path linux/wdk-build/Cargo.toml --target-dir target/wdk-build

windows_lock_is_current() {
  env -u RUSTC_BOOTSTRAP "$CARGO" metadata --locked --format-version 1 >/dev/null
  echo "Cargo.lock (the Windows build's) matches Cargo.toml"
}
run "Cargo.lock is up to date" windows_lock_is_current
run "GitHub workflows (actionlint, shellcheck, pins, pwsh parse)" bash linux/lint-workflows.sh

python=$(bash emulator/setup.sh) || { echo "test.sh: emulator/setup.sh failed (above)" >&2; exit 1; }
run "WinDbg extension and PowerShell syntax" bash windbg/test.sh
run "PE checks, Wine, dump analysis and emulated kernel" "$python" -m pytest -c emulator/pyproject.toml --rootdir emulator linux/tests wine/tests lldb/tests emulator/tests docs/test

summarize
((failed == 0))
