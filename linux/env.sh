# Shared by the Linux scripts (sourced, not run): the Debian toolchain that
# builds TestDriver.sys for x86_64-pc-windows-msvc without Windows or a WDK.
# shellcheck shell=bash

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=x86_64-pc-windows-msvc

# Debian packages, by group, each with one file that proves it is installed.
# `build`: what linux/build.sh needs to make TestDriver.sys.
declare -A DEBIAN_PACKAGES_build=(
  [rustc-web]=/usr/bin/rustc
  [cargo-web]=/usr/bin/cargo
  [rust-web-src]=/usr/lib/rustlib/src/rust/library/core/Cargo.toml
  [rust-web-clippy]=/usr/bin/cargo-clippy
  [lld-19]=/usr/bin/lld-link-19
  [llvm-19]=/usr/bin/llvm-dlltool-19
  [clang-19]=/usr/bin/clang-19
  [libclang-19-dev]=/usr/lib/llvm-19/lib/libclang.so
  [mingw-w64-common]=/usr/share/mingw-w64/include/ddk/ntifs.h
)
# `test`: what linux/test.sh needs beyond `build` (the emulator's venv, the
# WinDbg extension's node tests).
declare -A DEBIAN_PACKAGES_test=(
  [python3-venv]=/usr/lib/python3.11/ensurepip/__init__.py
  [nodejs]=/usr/bin/node
  [npm]=/usr/bin/npm
)
# `wine`: Debian's Wine, which loads TestDriver.sys in winedevice.exe.
declare -A DEBIAN_PACKAGES_wine=(
  [wine64]=/usr/lib/wine/wine64
  [wine]=/usr/lib/wine/wineserver
)

# Installs whatever is missing of the named groups (default: build), with
# apt-get, as root or through sudo. Prints nothing when everything is there.
ensure_debian_packages() {
  local groups=("${@:-build}") missing=() group package
  for group in "${groups[@]}"; do
    local -n packages="DEBIAN_PACKAGES_$group"
    for package in "${!packages[@]}"; do
      [[ -e ${packages[$package]} ]] || missing+=("$package")
    done
    unset -n packages
  done
  ((${#missing[@]})) || return 0
  echo "Installing Debian packages: ${missing[*]}" >&2
  local sudo=()
  ((EUID == 0)) || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

# Debian's rustc/cargo 1.96 (rustc-web) come with the library sources that
# -Zbuild-std needs; rustup's toolchain earlier on PATH has neither the Windows
# target nor rust-src, so the Debian tools come first (cargo clippy finds
# Debian's cargo-clippy and clippy-driver on PATH).
export PATH=/usr/bin:$PATH
export RUSTC=/usr/bin/rustc
export RUSTDOC=/usr/bin/rustdoc
export CARGO=/usr/bin/cargo
# -Zbuild-std and the separate lock file of the Linux build are unstable cargo
# features of this stable toolchain.
export RUSTC_BOOTSTRAP=1
# bindgen (in linux/wdk-sys) loads libclang at run time.
export LIBCLANG_PATH=/usr/lib/llvm-19/lib

# Arguments every Linux cargo command takes: the patch that swaps wdk-sys and
# wdk-build for the stand-ins in linux/, and the lock file linux/Cargo.lock.
LINUX_CARGO_ARGS=(--config "$REPO_ROOT/linux/cargo/config.toml" -Zlockfile-path)

# Arguments of a driver build for Windows.
DRIVER_CARGO_ARGS=(
  --target "$TARGET"
  -Zbuild-std=core,alloc,compiler_builtins
  -Zbuild-std-features=compiler-builtins-mem
  --config "target.$TARGET.linker=\"lld-link-19\""
)
