# Shared by the Linux scripts (sourced, not run): the Debian packages each
# command needs, and the Debian toolchain that builds TestDriver.sys for
# x86_64-pc-windows-msvc without Windows or a WDK.
# shellcheck shell=bash disable=SC2034  # the arrays are for the scripts that source this

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=x86_64-pc-windows-msvc

# Debian packages, by group, each with one file that proves it is installed.
# All come from Debian 12's standard suites bookworm, bookworm-updates and
# bookworm-security (Rust 1.96 is only in the last).
# `build`: what linux/build.sh needs to make TestDriver.sys (ca-certificates:
# cargo fetches the crates over HTTPS). No clang: the stand-in wdk-sys ships
# its bindings; clang-19, libclang-19-dev and mingw-w64-common are for
# regenerating them (linux/wdk-sys/generate.sh) and the C test drivers of
# emulator/tests: the `clang` group. gcc-mingw-w64 builds out/fulldump.exe,
# the Wine dump helper (wine/fulldump.c).
declare -A DEBIAN_PACKAGES_build=(
  [rustc-web]=/usr/bin/rustc
  [cargo-web]=/usr/bin/cargo
  [rust-web-src]=/usr/lib/rustlib/src/rust/library/core/Cargo.toml
  [rust-web-clippy]=/usr/bin/cargo-clippy
  [lld-19]=/usr/bin/lld-link-19
  [llvm-19]=/usr/bin/llvm-dlltool-19
  [gcc-mingw-w64-x86-64-win32]=/usr/bin/x86_64-w64-mingw32-gcc-win32
  [ca-certificates]=/etc/ssl/certs/ca-certificates.crt
)
# `clang`: what linux/test.sh needs beyond `build`: clang and mingw-w64's DDK
# headers for the C test drivers of emulator/tests and for regenerating the
# stand-in wdk-sys's bindings (linux/wdk-sys/generate.sh).
declare -A DEBIAN_PACKAGES_clang=(
  [clang-19]=/usr/bin/clang-19
  [libclang-19-dev]=/usr/lib/llvm-19/lib/libclang.so
  [mingw-w64-common]=/usr/share/mingw-w64/include/ddk/ntifs.h
)
# `python`: Debian's Python 3.11 with venv and ensurepip, for the venvs of
# emulator/setup.sh and windbg/test.sh (pip installs from PyPI over HTTPS).
declare -A DEBIAN_PACKAGES_python=(
  [python3-venv]=/usr/lib/python3.11/ensurepip/__init__.py
  [ca-certificates]=/etc/ssl/certs/ca-certificates.crt
)
# `test`: what windbg/test.sh needs beyond `python`: Debian 12's node 18 and
# npm 9 (node's built-in test runner, `npm ci` of the pinned acorn).
declare -A DEBIAN_PACKAGES_test=(
  [nodejs]=/usr/bin/node
  [npm]=/usr/bin/npm
)
# `wine`: Debian's Wine, which loads TestDriver.sys in winedevice.exe, and the
# python3 that runs wine/winerun.py. winerun.py runs the two files named here,
# not the `wine` package's /usr/bin wrappers.
declare -A DEBIAN_PACKAGES_wine=(
  [wine64]=/usr/lib/wine/wine64
  [libwine]=/usr/lib/wine/wineserver
  [python3]=/usr/bin/python3
)
# `dump`: lldb-19 and its Python module, for linux/analyze-dump.sh (lldb/analyze.py runs
# inside lldb-19, whose embedded Python loads the module).
declare -A DEBIAN_PACKAGES_dump=(
  [lldb-19]=/usr/bin/lldb-19
  [python3-lldb-19]=/usr/lib/llvm-19/lib/python3.11/site-packages/lldb/__init__.py
  [python3]=/usr/bin/python3
)
# `fresh`: what linux/fresh-check.sh needs to make a minimal Debian 12 root.
declare -A DEBIAN_PACKAGES_fresh=(
  [debootstrap]=/usr/sbin/debootstrap
  [debian-archive-keyring]=/usr/share/keyrings/debian-archive-keyring.gpg
)

# The oldest version (dpkg's order) each package may have; older ones are
# upgraded, and when apt has nothing newer the command stops and says why.
declare -A DEBIAN_MIN_VERSION=(
  [rustc-web]=1.96 [cargo-web]=1.96 [rust-web-src]=1.96 [rust-web-clippy]=1.96
  [nodejs]=18
)

# What to do about PACKAGE at VERSION, older than DEBIAN_MIN_VERSION allows.
_debian_too_old_hint() {
  case $1 in
    rustc-web|cargo-web|rust-web-src|rust-web-clippy)
      cat <<EOF
Debian's $1 is $2, and TestDriver.sys needs ${DEBIAN_MIN_VERSION[$1]}: cargo 1.85 stops with
"error: unknown -Z flag specified: lockfile-path". Debian 12 ships
rustc-web/cargo-web 1.96 in its security suite: add bookworm-security to apt's
sources, e.g. these lines in /etc/apt/sources.list.d/debian.sources

  Types: deb
  URIs: http://deb.debian.org/debian-security
  Suites: bookworm-security
  Components: main
  Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

(or "deb http://deb.debian.org/debian-security bookworm-security main" in
/etc/apt/sources.list), then run the command again: it upgrades them.
EOF
      ;;
    nodejs)
      cat <<EOF
nodejs $2 is installed, and windbg/test.sh needs node >= ${DEBIAN_MIN_VERSION[$1]}. Debian 12's own
nodejs (18.19 or newer, from bookworm and bookworm-security) will do: remove
the apt source or pin that provides $2, then run the command again.
EOF
      ;;
    *) echo "$1 $2 is older than ${DEBIAN_MIN_VERSION[$1]}." ;;
  esac
}

# Prints, one a line, the packages of the named groups that are missing or
# older than DEBIAN_MIN_VERSION allows.
_debian_packages_to_install() {
  local group package version
  for group in "$@"; do
    if ! declare -p "DEBIAN_PACKAGES_$group" >/dev/null 2>&1; then
      echo "env.sh: no Debian package group '$group'" >&2
      return 1
    fi
    local -n packages="DEBIAN_PACKAGES_$group"
    for package in "${!packages[@]}"; do
      if [[ ! -e ${packages[$package]} ]]; then
        echo "$package"
      elif [[ -n ${DEBIAN_MIN_VERSION[$package]:-} ]]; then
        version=$(dpkg-query -W -f='${Version}' "$package" 2>/dev/null) || version=''
        if [[ -z $version ]] || dpkg --compare-versions "$version" lt "${DEBIAN_MIN_VERSION[$package]}"; then
          echo "$package"
        fi
      fi
    done
    unset -n packages
  done
}

# Sets the caller's array `missing` to what the named groups lack, once each,
# sorted; exits the calling script on an unknown group.
_missing_debian_packages() {
  local list
  list=$(_debian_packages_to_install "$@") || exit 1
  missing=()
  [[ -z $list ]] || mapfile -t missing < <(sort -u <<<"$list")
}

# Installs (or upgrades) whatever is missing or too old of the named groups
# (default: build) with apt-get, as root or through sudo. Recommended packages
# are left out: every group works without them on a minimal Debian 12
# (linux/fresh-check.sh checks it), and wine64's would be the i386 wine32.
# Prints nothing when everything is there; when something cannot be installed,
# says what to do and exits the calling script.
ensure_debian_packages() {
  local groups=("${@:-build}") package version log key
  local -a missing sudo=()
  _missing_debian_packages "${groups[@]}"
  ((${#missing[@]})) || return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "env.sh: apt-get not found: this needs Debian 12, or these Debian packages: ${missing[*]}" >&2
    exit 1
  fi
  if ((EUID != 0)); then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "env.sh: the Debian packages ${missing[*]} are missing and sudo is not installed: run the" \
        "command as root, or first, as root: apt-get install --no-install-recommends ${missing[*]}" >&2
      exit 1
    fi
    sudo=(sudo)
  fi
  echo "Installing Debian packages (${groups[*]}): ${missing[*]}" >&2
  log=$(mktemp)
  if ! "${sudo[@]}" apt-get update -q >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "env.sh: apt-get update failed (above)" >&2
    exit 1
  fi
  if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -q --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    rm -f "$log"
    echo "env.sh: apt-get install ${missing[*]} failed (above). These packages come from Debian 12's" \
      "suites bookworm, bookworm-updates and bookworm-security, which apt's sources" \
      "(/etc/apt/sources.list, /etc/apt/sources.list.d/) must name." >&2
    exit 1
  fi
  rm -f "$log"
  _missing_debian_packages "${groups[@]}"
  ((${#missing[@]})) || return 0
  local hinted=' '
  for package in "${missing[@]}"; do
    version=$(dpkg-query -W -f='${Version}' "$package" 2>/dev/null) || version=''
    if [[ -n $version && -n ${DEBIAN_MIN_VERSION[$package]:-} ]]; then
      # The Rust packages come from one suite together: one message for them.
      case $package in rustc-web|cargo-web|rust-web-*) key=rust ;; *) key=$package ;; esac
      [[ $hinted == *" $key "* ]] && continue
      hinted+="$key "
      echo "env.sh: $(_debian_too_old_hint "$package" "$version")" >&2
    else
      echo "env.sh: apt-get ran, yet $package is not installed (status: ${version:-none})" >&2
    fi
  done
  exit 1
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
