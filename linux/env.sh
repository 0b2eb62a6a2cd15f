# Shared by the Linux scripts (sourced, not run): the Debian packages each
# command needs, and the Debian toolchain that builds TestDriver.sys for
# x86_64-pc-windows-msvc without Windows or a WDK.
# shellcheck shell=bash disable=SC2034  # the arrays are for the scripts that source this

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=x86_64-pc-windows-msvc

# The Debian releases the Linux build supports, on x86_64 (amd64), each with its
# standard suites CODENAME, CODENAME-updates and CODENAME-security.
declare -A DEBIAN_RELEASES=([bookworm]=12 [trixie]=13)

# This machine's release (/etc/os-release): DEBIAN_CODENAME and DEBIAN_VERSION when it is
# one of DEBIAN_RELEASES, else empty; OS_PRETTY_NAME names it either way.
_read_os_release() {
  local id='' codename='' pretty=''
  if [[ -r ${ENV_SH_OS_RELEASE:-/etc/os-release} ]]; then
    # shellcheck disable=SC1090
    read -r id codename pretty < <(
      . "${ENV_SH_OS_RELEASE:-/etc/os-release}" 2>/dev/null
      echo "${ID:-?} ${VERSION_CODENAME:-?} ${PRETTY_NAME:-${ID:-unknown}}")
  fi
  OS_PRETTY_NAME=${pretty:-an unknown system (no /etc/os-release)}
  DEBIAN_CODENAME='' DEBIAN_VERSION=''
  if [[ $id == debian && -n ${DEBIAN_RELEASES[$codename]:-} ]]; then
    DEBIAN_CODENAME=$codename DEBIAN_VERSION=${DEBIAN_RELEASES[$codename]}
  fi
}
_read_os_release

# Debian packages by group, each with what proves it is installed: a file, or
# `python3:MODULE`, a module Debian's /usr/bin/python3 finds (no path names a
# Python version). Names and proofs are the same on both releases, all from the
# standard suites (Rust 1.96 from CODENAME-security).
# `build`: linux/build.sh (ca-certificates: cargo fetches over HTTPS). No clang:
# the stand-in wdk-sys ships its bindings, and lld-link makes its import library.
declare -A DEBIAN_PACKAGES_build=(
  [rustc-web]=/usr/bin/rustc
  [cargo-web]=/usr/bin/cargo
  [rust-web-src]=/usr/lib/rustlib/src/rust/library/core/Cargo.toml
  [lld-19]=/usr/bin/lld-link-19
  [ca-certificates]=/etc/ssl/certs/ca-certificates.crt
)
# `clang`: clang, LLVM's tools and mingw-w64's DDK headers, for the C test drivers of
# emulator/tests, linux/wdk-sys/generate.sh and the PDB checks (test.sh installs it).
declare -A DEBIAN_PACKAGES_clang=(
  [clang-19]=/usr/bin/clang-19
  [libclang-19-dev]=/usr/lib/llvm-19/lib/libclang.so
  [llvm-19]=/usr/bin/llvm-pdbutil-19
  [mingw-w64-common]=/usr/share/mingw-w64/include/ddk/ntifs.h
)
# `python`: python3 with venv and ensurepip, for ensure_venv (pip uses HTTPS).
declare -A DEBIAN_PACKAGES_python=(
  [python3-venv]=python3:ensurepip
  [ca-certificates]=/etc/ssl/certs/ca-certificates.crt
)
# `test`: clippy for linux/test.sh; node >= 18 (its test runner) and npm, for windbg/test.sh.
declare -A DEBIAN_PACKAGES_test=(
  [rust-web-clippy]=/usr/bin/cargo-clippy
  [nodejs]=/usr/bin/node
  [npm]=/usr/bin/npm
)
# `wine`: the two files wine/winerun.py runs (not the /usr/bin wrappers), its python3,
# and gcc-mingw-w64 for out/fulldump.exe (wine/fulldump.c), kept out of `build` so a
# fresh machine's demo does not download its 44 MB.
declare -A DEBIAN_PACKAGES_wine=(
  [gcc-mingw-w64-x86-64-win32]=/usr/bin/x86_64-w64-mingw32-gcc-win32
  [wine64]=/usr/lib/wine/wine64
  [libwine]=/usr/lib/wine/wineserver
  [python3]=/usr/bin/python3
)
# `dump`: lldb-19 and its Python module, for linux/analyze-dump.sh.
declare -A DEBIAN_PACKAGES_dump=(
  [lldb-19]=/usr/bin/lldb-19
  [python3-lldb-19]=/usr/lib/llvm-19/lib/python3/dist-packages/lldb/_lldb.so
  [python3]=/usr/bin/python3
)
# `fresh`: linux/fresh-check.sh's minimal Debian roots.
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
      cat <<EOT
Debian's $1 is $2, and TestDriver.sys needs ${DEBIAN_MIN_VERSION[$1]}: cargo 1.85 stops with
"error: unknown -Z flag specified: lockfile-path". Debian $DEBIAN_VERSION ships
rustc-web/cargo-web 1.96 in its security suite: add $DEBIAN_CODENAME-security to apt's
sources, e.g. these lines in /etc/apt/sources.list.d/debian.sources

  Types: deb
  URIs: http://deb.debian.org/debian-security
  Suites: $DEBIAN_CODENAME-security
  Components: main
  Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

(or "deb http://deb.debian.org/debian-security $DEBIAN_CODENAME-security main" in
/etc/apt/sources.list), then run the command again: it upgrades them.
EOT
      ;;
    nodejs)
      cat <<EOT
nodejs $2 is installed, and windbg/test.sh needs node >= ${DEBIAN_MIN_VERSION[$1]}. Debian $DEBIAN_VERSION's own
nodejs (from $DEBIAN_CODENAME and $DEBIAN_CODENAME-security) will do: remove the apt source or
pin that provides $2, then run the command again.
EOT
      ;;
    *) echo "$1 $2 is older than ${DEBIAN_MIN_VERSION[$1]}." ;;
  esac
}

# Whether PROOF (a DEBIAN_PACKAGES_* value) holds.
_debian_proof_holds() {
  case $1 in
    python3:*) [[ -x /usr/bin/python3 ]] && /usr/bin/python3 -c \
                 'import importlib.util, sys; sys.exit(importlib.util.find_spec(sys.argv[1]) is None)' \
                 "${1#python3:}" 2>/dev/null ;;
    *) [[ -e $1 ]] ;;
  esac
}

# Sets the caller's array `missing` to the packages of the named groups that are missing
# or older than DEBIAN_MIN_VERSION allows, once each, sorted; exits on an unknown group.
_missing_debian_packages() {
  local group package version list=''
  for group in "$@"; do
    declare -p "DEBIAN_PACKAGES_$group" >/dev/null 2>&1 \
      || { echo "env.sh: no Debian package group '$group'" >&2; exit 1; }
    local -n packages="DEBIAN_PACKAGES_$group"
    for package in "${!packages[@]}"; do
      if ! _debian_proof_holds "${packages[$package]}"; then
        list+=$package$'\n'
      elif [[ -n ${DEBIAN_MIN_VERSION[$package]:-} ]]; then
        version=$(dpkg-query -W -f='${Version}' "$package" 2>/dev/null) || version=''
        if [[ -z $version ]] || dpkg --compare-versions "$version" lt "${DEBIAN_MIN_VERSION[$package]}"; then
          list+=$package$'\n'
        fi
      fi
    done
    unset -n packages
  done
  missing=()
  [[ -z $list ]] || mapfile -t missing < <(sort -u <<<"${list%$'\n'}")
}

# Progress lines (`==> apt: ...`) go to the stderr of the outermost script that
# sourced this file, even when a script in between keeps its output in a log
# (demo.sh keeps build.sh's): a first run is never silent for a minute.
if [[ -z ${TESTDRIVER_PROGRESS_FD:-} || ! ${TESTDRIVER_PROGRESS_FD} =~ ^[0-9]+$ ]] ||
   ! { true >&"$TESTDRIVER_PROGRESS_FD"; } 2>/dev/null; then
  exec {TESTDRIVER_PROGRESS_FD}>&2
  export TESTDRIVER_PROGRESS_FD
fi
progress() { echo "==> $*" >&"$TESTDRIVER_PROGRESS_FD"; }

# phase NAME COMMAND...: runs COMMAND, one phase of a first run (apt, venv, build);
# when TESTDRIVER_PHASE_LOG names a file (fresh-check.sh sets it), appends
# "NAME<TAB>SECONDS" there. A phase inside another is not logged again.
phase() {
  local name=$1 start status=0
  shift
  if [[ -n ${TESTDRIVER_PHASE:-} || -z ${TESTDRIVER_PHASE_LOG:-} ]]; then
    "$@" || return
    return 0
  fi
  start=$EPOCHREALTIME
  TESTDRIVER_PHASE=$name "$@" || status=$?
  printf '%s\t%s\n' "$name" "$(seconds_since "$start")" >>"$TESTDRIVER_PHASE_LOG" || true
  return "$status"
}
# START (an $EPOCHREALTIME) -> the seconds since, with one decimal: "12.3"
seconds_since() {
  local now=$EPOCHREALTIME
  local tenths=$(((10#${now/./} - 10#${1/./}) / 100000))
  printf '%d.%d' $((tenths / 10)) $((tenths % 10))
}

# Installs (or upgrades) what the named groups (default: build) lack, with apt-get
# as root or through sudo, on the releases of DEBIAN_RELEASES only. No recommended
# packages: every group works without them on a minimal Debian (fresh-check.sh
# checks it), and wine64's would be the i386 wine32. Silent when nothing is missing;
# when something cannot be installed, says what to do and exits the calling script.
ensure_debian_packages() {
  local groups=("${@:-build}") arch
  local -a missing
  _missing_debian_packages "${groups[@]}"
  ((${#missing[@]})) || return 0
  arch=$(dpkg --print-architecture 2>/dev/null) || arch=$(uname -m)
  if [[ -z $DEBIAN_CODENAME || $arch != amd64 ]]; then
    echo "env.sh: this machine runs $OS_PRETTY_NAME ($arch), and TestDriver's Linux build installs its" \
      "packages on Debian 13 (trixie) or Debian 12 (bookworm), x86_64, with their standard suites: use one" \
      "of those (a VM or container will do), or install the equivalents of these Debian packages yourself:" \
      "${missing[*]}" >&2
    exit 1
  fi
  phase apt _apt_install "${groups[*]}" "${missing[@]}"
}

# GROUPS PACKAGE...: the apt-get part of ensure_debian_packages.
_apt_install() {
  local group_list=$1 log package version key hinted=' '
  shift
  local -a missing=("$@") apt_get=(apt-get)
  if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 || { echo "env.sh: the Debian packages ${missing[*]} are missing and" \
      "sudo is not installed: run the command as root, or first, as root: apt-get install" \
      "--no-install-recommends ${missing[*]}" >&2; exit 1; }
    apt_get=(sudo env DEBIAN_FRONTEND=noninteractive apt-get)
  fi
  log=$(mktemp "${TMPDIR:-/tmp}/apt-get.XXXXXX.log")
  progress "apt: installing Debian $DEBIAN_VERSION packages ($group_list): ${missing[*]} (apt's log: $log)"
  "${apt_get[@]}" update -q >"$log" 2>&1 || { _failed 20 "$log" "apt-get update failed"; exit 1; }
  # dpkg without an fsync per file (docs/linux-build.md says why, and the cost)
  if ! DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install -y -q --no-install-recommends \
      -o Dpkg::Options::=--force-unsafe-io "${missing[@]}" >>"$log" 2>&1; then
    _failed 30 "$log" "apt-get install ${missing[*]} failed" ". These packages come from Debian" \
      "$DEBIAN_VERSION's suites $DEBIAN_CODENAME, $DEBIAN_CODENAME-updates and $DEBIAN_CODENAME-security," \
      "which apt's sources (/etc/apt/sources.list, /etc/apt/sources.list.d/) must name."
    exit 1
  fi
  rm -f "$log"
  # (group_list is the groups joined by spaces: split it again)
  # shellcheck disable=SC2086
  _missing_debian_packages $group_list
  ((${#missing[@]})) || return 0
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

# LINES LOG MESSAGE [MORE...]: the end of LOG, then "env.sh: MESSAGE (the end of its log
# is above; all of it: LOG)MORE" on stderr.
_failed() {
  tail -n "$1" "$2" >&2
  echo "env.sh: $3 (the end of its log is above; all of it: $2)${*:4}" >&2
}

# The requirements files REQUIREMENTS names: itself and, recursively, those it
# includes with -r/--requirement (relative to its own folder).
_requirements_files() {
  local file=$1 line include
  echo "$file"
  while IFS= read -r line || [[ -n $line ]]; do
    if [[ $line =~ ^[[:space:]]*(-r|--requirement)[[:space:]=]+([^[:space:]#]+) ]]; then
      include=${BASH_REMATCH[2]}
      [[ $include == /* ]] || include=$(dirname "$file")/$include
      _requirements_files "$include"
    fi
  done <"$file"
}

# ensure_venv VENV REQUIREMENTS [PIP_OPTION...]: the one way the project makes a venv
# for a tool set: Debian's python3 (PYTHON=... for another, >= 3.10), pip, and
# REQUIREMENTS installed with the PIP_OPTIONs. One freshness rule: VENV is current
# when its python is the same Python version and VENV/.requirements.sha256 holds the
# hash of that version, the PIP_OPTIONs and the requirements files (with those they
# include); else it is made or upgraded in place and pip installs again. Nothing in
# VENV is deleted; a directory that is not a venv is refused. Silent when current;
# returns 1, having said why, when it cannot.
ensure_venv() {
  local venv=$1 requirements=$2
  shift 2
  local py=${PYTHON:-/usr/bin/python3} version want venv_version
  [[ -n ${PYTHON:-} || -x $py ]] || py=python3
  command -v "$py" >/dev/null 2>&1 || { echo "env.sh: no Python at $py (PYTHON=... names another)" >&2; return 1; }
  if ! version=$("$py" -c 'import sys
if sys.version_info < (3, 10): sys.exit(1)
print(sys.version.replace("\n", " "))' 2>/dev/null); then
    echo "env.sh: $py is $("$py" -V 2>&1 | head -n 1), and $venv needs Python >= 3.10" \
      "(PYTHON=... names another)" >&2
    return 1
  fi
  if [[ -e $venv && ! -f $venv/pyvenv.cfg && -n $(ls -A "$venv" 2>/dev/null || echo x) ]]; then
    echo "env.sh: $venv exists and is not a Python venv (no pyvenv.cfg): give a new or empty directory" >&2
    return 1
  fi
  # one ensure_venv at a time per venv (test.sh runs suites side by side)
  local existed=0 lock
  [[ -e $venv ]] && existed=1
  mkdir -p "$venv"
  exec {lock}>"$venv/.ensure_venv.lock"
  flock "$lock"
  local -a files
  mapfile -t files < <(_requirements_files "$requirements")
  want=$({ echo "$version"; printf '%s\n' "$@"; cat "${files[@]}"; } | sha256sum) \
    || { echo "env.sh: cannot read the requirements ${files[*]}" >&2; exec {lock}>&-; return 1; }
  want=${want%% *}
  venv_version=$("$venv/bin/python" -c 'import sys; print(sys.version.replace("\n", " "))' 2>/dev/null) \
    || venv_version=''
  local status=0
  if [[ $venv_version != "$version" || $(cat "$venv/.requirements.sha256" 2>/dev/null) != "$want" ]]; then
    phase venv _venv_install "$venv" "$requirements" "$py" "$version" "$venv_version" "$want" "$existed" "$@" \
      || status=$?
  fi
  exec {lock}>&-
  return "$status"
}

# The making part of ensure_venv.
_venv_install() {
  local venv=$1 requirements=$2 py=$3 version=$4 venv_version=$5 want=$6 existed=$7 log
  shift 7
  local -a upgrade=()
  log=$(mktemp "${TMPDIR:-/tmp}/pip.XXXXXX.log")
  progress "venv: pip install -r ${requirements#"$REPO_ROOT"/} into ${venv#"$REPO_ROOT"/} (pip's log: $log)"
  if [[ $venv_version != "$version" ]]; then
    [[ -f $venv/pyvenv.cfg ]] && upgrade=(--upgrade)
    if ! "$py" -m venv "${upgrade[@]}" "$venv" >>"$log" 2>&1; then
      ((existed)) || rm -rf "$venv"  # only what this call made (an empty folder and its lock)
      _failed 20 "$log" "'$py -m venv ${upgrade[*]:+${upgrade[*]} }$venv' failed" ": it needs the venv and" \
        "ensurepip modules (Debian: apt-get install python3-venv)"
      return 1
    fi
  fi
  if ! "$venv/bin/python" -m pip --version >/dev/null 2>&1 &&
     ! "$venv/bin/python" -m ensurepip --default-pip >>"$log" 2>&1; then
    _failed 20 "$log" "$venv has no pip and ensurepip failed" " (Debian: apt-get install python3-venv)"
    return 1
  fi
  if ! "$venv/bin/python" -m pip install --disable-pip-version-check --no-input \
      -r "$requirements" "$@" >>"$log" 2>&1; then
    _failed 20 "$log" "pip could not install ${requirements#"$REPO_ROOT"/} into $venv"
    return 1
  fi
  echo "$want" >"$venv/.requirements.sha256"
  rm -f "$log"
}

# Debian's rustc/cargo 1.96 (rustc-web) come with the library sources that
# -Zbuild-std needs; rustup's toolchain earlier on PATH has neither the Windows
# target nor rust-src, so the Debian tools come first (cargo clippy finds
# Debian's cargo-clippy and clippy-driver on PATH).
export PATH=/usr/bin:$PATH
export RUSTC=/usr/bin/rustc
export RUSTDOC=/usr/bin/rustdoc
export CARGO=/usr/bin/cargo
# -Zbuild-std, the separate lock file of the Linux build and per-package rustc
# flags are unstable cargo features of this stable toolchain.
export RUSTC_BOOTSTRAP=1

# Arguments every Linux cargo command takes: the patch that swaps wdk-sys and
# wdk-build for the stand-ins in linux/, the lock file linux/Cargo.lock and the
# rustc flags that file gives some packages.
LINUX_CARGO_ARGS=(--config "$REPO_ROOT/linux/cargo/config.toml" -Zlockfile-path -Zprofile-rustflags)

# Arguments of the host unit tests (linux/test.sh; emulator/tests/mutants.py): a
# static C runtime, as the driver's build script requires (the host target is
# named, so build scripts are not affected), and GNU ld keeping unused sections as
# MSVC's linker does, so a kernel routine reachable from the tests fails to link;
# the unit-test profile is linux/cargo/config.toml's.
HOST_TARGET=x86_64-unknown-linux-gnu
HOST_TEST_CARGO_ARGS=(
  --profile unit-test --lib --target "$HOST_TARGET"
  --config "target.$HOST_TARGET.rustflags=[\"-C\", \"target-feature=+crt-static\", \"-C\", \"link-arg=-Wl,--no-gc-sections\"]"
)

# Arguments of a driver build for Windows.
DRIVER_CARGO_ARGS=(
  --target "$TARGET"
  -Zbuild-std=core,alloc,compiler_builtins
  -Zbuild-std-features=compiler-builtins-mem
  --config "target.$TARGET.linker=\"lld-link-19\""
)
