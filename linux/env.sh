# Shared by the Linux scripts (sourced, not run): the Debian toolchain that
# builds TestDriver.sys for x86_64-pc-windows-msvc without Windows or a WDK.
# shellcheck shell=bash

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=x86_64-pc-windows-msvc

# Debian packages the build needs, and one file each that proves it installed.
declare -A DEBIAN_PACKAGES=(
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

# Installs whatever of DEBIAN_PACKAGES is missing (apt-get, as root or through
# sudo). Prints nothing when everything is there.
ensure_debian_packages() {
  local missing=() package
  for package in "${!DEBIAN_PACKAGES[@]}"; do
    [[ -e ${DEBIAN_PACKAGES[$package]} ]] || missing+=("$package")
  done
  ((${#missing[@]})) || return 0
  echo "Installing Debian packages: ${missing[*]}" >&2
  local sudo=()
  ((EUID == 0)) || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
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
