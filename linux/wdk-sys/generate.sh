#!/usr/bin/env bash
# Regenerates the stand-in wdk-sys's bindings, src/generated/ (bindgen over
# wdk-sys.h and the DDK headers of the pinned mingw-w64-common, with libclang
# 19), which the driver's build then compiles without bindgen or clang.
#   linux/wdk-sys/generate.sh [OUT_DIR]   (default: linux/wdk-sys/src/generated)
# The headers are pinned as windows-sys pins its metadata: mingw-w64-common
# 10.0.0-3 (Debian 12's). Where another version is installed (Debian 13:
# 12.0.0-5), the pinned package is fetched from Debian's pool (or from
# $WDK_SYS_HEADERS_URL), checked against its SHA-256 and unpacked under
# target/, so every release makes the same bindings. linux/tests/
# test_wdk_sys_bindings.py runs it into a scratch folder and compares. Needs
# the Debian packages clang-19, libclang-19-dev and python3.
set -euo pipefail
source "$(dirname "$0")/../env.sh"

case ${1:-} in
  -h|--help) sed -n '2,12s/^# \{0,1\}//p' "$0"; exit 0 ;;
  -*) echo "generate.sh: unknown option '$1'; see --help" >&2; exit 2 ;;
esac
if (($# > 1)); then
  echo "generate.sh: takes at most one argument, OUT_DIR (got: $*)" >&2
  exit 2
fi
out_dir=${1:-$REPO_ROOT/linux/wdk-sys/src/generated}

PINNED_HEADERS=10.0.0-3
PINNED_HEADERS_SHA256=1317a00bbbc3866a6d23ff177bc3f6c92ccbfc9489f8d5314bfac76cf60ffc19
PINNED_HEADERS_URL=https://deb.debian.org/debian/pool/main/m/mingw-w64/mingw-w64-common_${PINNED_HEADERS}_all.deb

# Prints the include folder of the pinned package, fetched and unpacked under
# target/ once (each time from $WDK_SYS_HEADERS_URL when that is set); on
# failure says why and leaves nothing behind.
pinned_headers() {
  local url=${WDK_SYS_HEADERS_URL:-$PINNED_HEADERS_URL}
  local cache=$REPO_ROOT/target/mingw-w64-common-$PINNED_HEADERS
  local include=$cache/usr/share/mingw-w64/include
  if [[ -z ${WDK_SYS_HEADERS_URL:-} && -f $include/ddk/ntifs.h ]]; then
    echo "$include"
    return
  fi
  local tmp
  tmp=$(mktemp -d "$REPO_ROOT/target/mingw-w64-common.XXXXXX")
  echo "generate.sh: fetching mingw-w64-common $PINNED_HEADERS from $url" >&2
  if ! python3 - "$url" "$tmp/package.deb" "$PINNED_HEADERS_SHA256" <<'PY'
import hashlib, sys, urllib.request
url, path, sha256 = sys.argv[1:]
try:
    data = urllib.request.urlopen(url, timeout=120).read()
except (OSError, ValueError) as e:
    sys.exit(f"generate.sh: cannot fetch {url}: {e}")
got = hashlib.sha256(data).hexdigest()
if got != sha256:
    sys.exit(f"generate.sh: {url} is not mingw-w64-common's pinned package (SHA-256 {got}, expected {sha256})")
open(path, "wb").write(data)
PY
  then
    rm -rf "$tmp"
    return 1
  fi
  if ! dpkg-deb -x "$tmp/package.deb" "$tmp/root" || [[ ! -f $tmp/root/usr/share/mingw-w64/include/ddk/ntifs.h ]]; then
    echo "generate.sh: $url did not unpack to usr/share/mingw-w64/include/ddk/ntifs.h" >&2
    rm -rf "$tmp"
    return 1
  fi
  rm -rf "$cache"
  mv "$tmp/root" "$cache"
  rm -rf "$tmp"
  echo "$include"
}

if [[ -n ${WDK_SYS_MINGW_INCLUDE:-} ]]; then
  include=$WDK_SYS_MINGW_INCLUDE
  headers=$include
else
  headers="mingw-w64-common $PINNED_HEADERS"
  installed=$(dpkg-query -W -f='${Version}' mingw-w64-common 2>/dev/null || true)
  if [[ $installed == "$PINNED_HEADERS" && -z ${WDK_SYS_HEADERS_URL:-} ]]; then
    include=/usr/share/mingw-w64/include
  else
    mkdir -p "$REPO_ROOT/target"
    include=$(pinned_headers) || exit 1
  fi
fi
export WDK_SYS_MINGW_INCLUDE=$include
# bindgen loads libclang at run time.
export LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm-19/lib}
manifest=$REPO_ROOT/linux/wdk-sys/generator/Cargo.toml
"$CARGO" build --quiet --locked --manifest-path "$manifest" --target-dir "$REPO_ROOT/target/wdk-sys-generator"
"$REPO_ROOT/target/wdk-sys-generator/debug/wdk-sys-generator" "$out_dir" "$headers"
