#!/usr/bin/env bash
# Builds TestDriver.sys, TestDriver.pdb and TestDriver.map on Linux from the same
# src/ as the Windows build, installing the Debian toolchain if it is missing.
#
#   linux/build.sh            the faithful build (the seed's deadlock) -> out/
#   linux/build.sh --fixed    the build without the seed's defects    -> out/fixed/
#   linux/build.sh --debug    a debug build (default: release)
set -euo pipefail
source "$(dirname "$0")/env.sh"

usage() { sed -n '2,7s/^# \{0,1\}//p' "$0"; }

features=() out_dir=$REPO_ROOT/out profile=release profile_args=(--release)
for arg in "$@"; do
  case $arg in
    --fixed) features=(--features fixed); out_dir=$REPO_ROOT/out/fixed ;;
    --debug) profile=debug; profile_args=() ;;
    -h|--help) usage; exit 0 ;;
    *) echo "build.sh: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
  esac
done

ensure_debian_packages
cd "$REPO_ROOT"
phase build "$CARGO" build "${LINUX_CARGO_ARGS[@]}" "${DRIVER_CARGO_ARGS[@]}" "${profile_args[@]}" \
  "${features[@]}"

built=target/$TARGET/$profile
mkdir -p "$out_dir"
# cargo names a cdylib .dll; cargo-make renames it to .sys on Windows likewise.
cp "$built/TestDriver.dll" "$out_dir/TestDriver.sys"
cp "$built/TestDriver.pdb" "$out_dir/TestDriver.pdb"
cp "$built/deps/TestDriver.map" "$out_dir/TestDriver.map"
# The full-memory dump helper run under Wine (wine/fulldump.c; linux/demo.sh --wine --dump),
# where mingw-w64's gcc (env.sh's `wine` group) is installed.
if [[ -x /usr/bin/x86_64-w64-mingw32-gcc-win32 ]]; then
  x86_64-w64-mingw32-gcc-win32 -O2 -s -Wall -Wextra -Werror -o "$REPO_ROOT/out/fulldump.exe" \
    "$REPO_ROOT/wine/fulldump.c" -ldbghelp -lpsapi
else
  echo "not built: out/fulldump.exe (needs gcc-mingw-w64-x86-64-win32, env.sh's wine group)"
fi
size=$(stat -c %s "$out_dir/TestDriver.sys")
echo "built ${out_dir#"$REPO_ROOT"/}/TestDriver.sys ($size bytes, $profile${features:+, fixed})" \
  "with TestDriver.pdb and TestDriver.map"
