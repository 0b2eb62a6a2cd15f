#!/usr/bin/env bash
# Regenerates the stand-in wdk-sys's bindings, src/generated/ (bindgen over
# wdk-sys.h and Debian mingw-w64-common's DDK headers, with libclang 19), which
# the driver's build then compiles without bindgen or clang.
#   linux/wdk-sys/generate.sh [OUT_DIR]   (default: linux/wdk-sys/src/generated)
# linux/tests/test_wdk_sys_bindings.py runs it into a scratch folder and
# compares. Needs the Debian packages clang-19, libclang-19-dev and
# mingw-w64-common.
set -euo pipefail
source "$(dirname "$0")/../env.sh"

case ${1:-} in
  -h|--help) sed -n '2,8s/^# \{0,1\}//p' "$0"; exit 0 ;;
  -*) echo "generate.sh: unknown option '$1'; see --help" >&2; exit 2 ;;
esac
if (($# > 1)); then
  echo "generate.sh: takes at most one argument, OUT_DIR (got: $*)" >&2
  exit 2
fi
out_dir=${1:-$REPO_ROOT/linux/wdk-sys/src/generated}

include=${WDK_SYS_MINGW_INCLUDE:-/usr/share/mingw-w64/include}
if [[ -n ${WDK_SYS_MINGW_INCLUDE:-} ]]; then
  headers="$include"
elif ! headers="mingw-w64-common $(dpkg-query -W -f='${Version}' mingw-w64-common 2>/dev/null)"; then
  echo "generate.sh: Debian's mingw-w64-common is not installed (apt-get install clang-19" \
    "libclang-19-dev mingw-w64-common)" >&2
  exit 1
fi
# bindgen loads libclang at run time.
export LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm-19/lib}
manifest=$REPO_ROOT/linux/wdk-sys/generator/Cargo.toml
"$CARGO" build --quiet --locked --manifest-path "$manifest" --target-dir "$REPO_ROOT/target/wdk-sys-generator"
"$REPO_ROOT/target/wdk-sys-generator/debug/wdk-sys-generator" "$out_dir" "$headers"
