#!/usr/bin/env bash
# Runs every test of the project on a Linux machine, installing what it needs:
# both builds (linux/build.sh), clippy on them, the host unit tests, that
# Cargo.lock is current, the workflow lint, windbg/test.sh and the pytest files
# (PE, INX and bindings checks, Wine, lldb, the emulated kernel, the docs).
# Suites that share nothing run side by side, each one's output shown when it
# ends, with its time (docs/testing.md says what each checks). Ends with one
# line, "all: N passed, M failed", where a suite that failed without a failing
# test counts as one.
set -euo pipefail
case ${1:-} in -h|--help) sed -n '2,9s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
(($# == 0)) || { echo "test.sh: takes no arguments (got: $*); see bash linux/test.sh --help" >&2; exit 2; }
source "$(dirname "$0")/env.sh"
cd "$REPO_ROOT"

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
started=$EPOCHREALTIME

# suite NAME COMMAND...: runs COMMAND with its output kept in a log; when it
# ends, shows that output (under a lock, so suites running side by side do not
# mix) with the suite's time, and records its status for the summary.
suite() {
  local name=$1 id status=0 start=$EPOCHREALTIME seconds
  shift
  id=${start/./}_${name//[^A-Za-z0-9]/_}  # (the summary lists the suites in the order they started)
  echo "=== $name: started"
  "$@" >"$logs/$id.log" 2>&1 </dev/null || status=$?
  seconds=$(seconds_since "$start")
  printf '%s\t%s\t%s\n' "$status" "$seconds" "$name" >"$logs/$id.status"
  {
    flock 9
    cat "$logs/$id.log"
    if ((status)); then
      echo "=== FAILED: $name (exit $status after ${seconds}s)"
    else
      echo "=== $name: ${seconds}s"
    fi
  } 9>"$logs/print.lock"
  return "$status"
}

count() { # the pass/fail counts the runners printed in a log: "P F" (cargo test, node, pytest)
  awk '
    /^test result: |^=* *[0-9]+ (passed|failed)/ {
      for (i = 1; i < NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
    /^# pass [0-9]+$/ { p += $3 }
    /^# fail [0-9]+$/ { f += $3 }
    END { print p + 0, f + 0 }' "$1"
}

summarize() {
  local status_file status seconds name p f passed=0 failed=0
  echo
  echo "=== times (they overlap: the suites run side by side)"
  for status_file in "$logs"/*.status; do
    [[ -e $status_file ]] || continue
    IFS=$'\t' read -r status seconds name <"$status_file"
    read -r p f < <(count "${status_file%.status}.log")
    # a suite that failed with no failed test (a build, a lint finding) counts as one
    ((status == 0 || f > 0)) || f=1
    passed=$((passed + p)) failed=$((failed + f))
    printf '  %7ss  %s%s\n' "$seconds" "$name" "$( ((status == 0)) || echo "  FAILED (exit $status)")"
  done
  printf '  %7ss  %s\n' "$(seconds_since "$started")" "test.sh in all"
  echo "all: $passed passed, $failed failed"
  ((failed == 0))
}

ensure_debian_packages build clang python test wine dump

windows_lock_is_current() {
  env -u RUSTC_BOOTSTRAP "$CARGO" metadata --locked --format-version 1 >/dev/null
  echo "Cargo.lock (the Windows build's) matches Cargo.toml"
}

# The suites off the critical path run at a lower priority: the builds, then the
# big pytest run (the longest suite), get the CPU first, and these fill its gaps.
behind=(nice -n 10)

# The cargo checks after the builds, one after another (they share target/).
cargo_checks() {
  local features
  for features in "" "--features=fixed"; do
    suite "clippy ${features:-default}" "${behind[@]}" "$CARGO" clippy "${LINUX_CARGO_ARGS[@]}" "${DRIVER_CARGO_ARGS[@]}" \
      --release $features -- -D warnings || true
  done
  for features in "" "--features=fixed"; do
    suite "unit tests ${features:-default}" "${behind[@]}" "$CARGO" test "${LINUX_CARGO_ARGS[@]}" "${HOST_TEST_CARGO_ARGS[@]}" \
      $features || true
  done
  suite "wdk-build stand-in tests" "${behind[@]}" "$CARGO" test --release --locked \
    --manifest-path linux/wdk-build/Cargo.toml --target-dir target/wdk-build || true
  suite "Cargo.lock is up to date" windows_lock_is_current || true
}

# The pytest files that need neither build (nor target/): they run beside the
# builds. Every other file runs after them (a new file does too, unless named here).
no_build_tests=(
  linux/tests/test_setup_sh.py .github/lint/test_lint_workflows.py
  emulator/tests/test_docs.py emulator/tests/test_units.py
  emulator/tests/test_missing_builds.py emulator/tests/test_small_drivers.py
)
python=$REPO_ROOT/.venv/bin/python  # emulator/setup.sh's venv
pytest=("$python" -m pytest -c emulator/pyproject.toml --rootdir emulator)

suite "GitHub workflows (actionlint, shellcheck, pins, pwsh parse)" "${behind[@]}" bash .github/lint/lint-workflows.sh &
suite "WinDbg extension and PowerShell syntax" "${behind[@]}" bash windbg/test.sh &
{
  if suite "the emulator's venv (emulator/setup.sh)" "${behind[@]}" bash emulator/setup.sh; then
    : >"$logs/venv.ready"
    suite "pytest: the files that need no build" "${behind[@]}" "${pytest[@]}" "${no_build_tests[@]}" || true
  else
    : >"$logs/venv.failed"
  fi
} &

builds_ok=true
suite "build TestDriver.sys (default)" bash linux/build.sh || builds_ok=false
suite "build TestDriver.sys (fixed)" bash linux/build.sh --fixed || builds_ok=false

cargo_checks &
while [[ ! -e $logs/venv.ready && ! -e $logs/venv.failed ]]; do sleep 0.2; done
if [[ -e $logs/venv.ready ]] && $builds_ok; then
  # pytest-xdist: the test files spread over two workers; each file stays in one
  # (test_wine.py's session-scoped Wine prefix serves all of its tests). They go
  # in collection order, the longest first (emulator/tests/conftest.py), not
  # xdist's default order by number of tests, which left the long bindings test last.
  suite "PE checks, Wine, dump analysis and emulated kernel (pytest)" "${pytest[@]}" -n 2 --dist loadfile \
    --no-loadscope-reorder \
    "${no_build_tests[@]/#/--ignore=}" linux/tests wine/tests lldb/tests emulator/tests docs/test || true
else
  echo "=== not run: PE checks, Wine and emulated kernel (a build or the emulator's venv failed, above)"
  printf '1\t0.0\t%s\n' "PE checks, Wine and emulated kernel (not run)" >"$logs/9_pytest_not_run.status"
  : >"$logs/9_pytest_not_run.log"
fi
wait

summarize
