#!/usr/bin/env bash
# Checks README.md's promise on fresh machines: for each Debian release, a minimal
# root (debootstrap minbase plus git; apt suites CODENAME, CODENAME-updates and
# CODENAME-security) gets a clone of HEAD and runs there, as root in a chroot, the
# commands of README.md's first bash block; prints how long each took by phase (apt,
# venv, build, the rest: run) and when the demo's DEADLOCK line came.
#
#   sudo bash linux/fresh-check.sh [OPTIONS]
#
#   --suite SUITE       bookworm (Debian 12) or trixie (Debian 13); may be repeated
#                       (default: trixie, then bookworm, one after the other)
#   --without-security  leave SUITE-security out of the root's apt sources
#                       (Debian's Rust is then 1.85: the commands must say so)
#   --keep DIR          build the roots in DIR/SUITE (DIR new or empty) and keep them
#   --logs DIR          write each command's full output to DIR/SUITE (default: a
#                       new directory under /tmp, named at the end)
#   --timeout MINUTES   stop a command that runs longer (default: 60)
#   --command CMD       run CMD (in the clone, with bash) instead of README's
#                       commands; may be repeated
#
# The root reaches what this machine reaches: it gets its apt mirrors and Acquire
# (proxy) settings, the CA certificates added under /usr/local/share/ca-certificates,
# its pip/npm/cargo configuration and this environment's proxy and CA variables. The
# mounts (/proc, /sys, /dev...) live in a private namespace and end with the check,
# however it ends. Needs root and about 6 GB free per release. Exits 0 when every
# command exited 0 on every release.
set -euo pipefail
source "$(dirname "$0")/env.sh"

usage() { sed -n '2,27s/^# \{0,1\}//p' "$0"; }
die() { echo "fresh-check.sh: $*" >&2; exit 2; }

with_security=1 keep_dir='' log_dir='' timeout_min=60 commands=() suites=()
while (($#)); do
  case $1 in
    --without-security) with_security=0 ;;
    --suite|--keep|--logs|--timeout|--command)
      (($# >= 2)) && [[ -n $2 ]] || { usage >&2; die "$1 needs a value"; }
      case $1 in
        --suite) [[ -n ${DEBIAN_RELEASES[$2]:-} ]] \
                   || die "--suite takes $(printf '%s\n' "${!DEBIAN_RELEASES[@]}" | sort | paste -sd ' ' | sed 's/ / or /g'), not '$2'"
                 [[ " ${suites[*]} " == *" $2 "* ]] || suites+=("$2") ;;
        --keep) keep_dir=$2 ;;
        --logs) log_dir=$2 ;;
        --timeout) [[ $2 =~ ^[1-9][0-9]*$ ]] || die "--timeout takes whole minutes >= 1, not '$2'"
                   timeout_min=$2 ;;
        --command) commands+=("$2") ;;
      esac
      shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
  shift
done
((${#suites[@]})) || suites=(trixie bookworm)

((EUID == 0)) || die "needs root (debootstrap, chroot, mount): sudo bash linux/fresh-check.sh"
[[ $(dpkg --print-architecture 2>/dev/null) == amd64 ]] || die "needs a Debian amd64 host (dpkg, apt)"

# README's commands: the first ```bash block, comments and blank lines left out.
if ((${#commands[@]} == 0)); then
  mapfile -t commands < <(awk '
    /^```bash/ && !seen { inside = 1; seen = 1; next }
    inside && /^```/    { exit }
    inside              { sub(/[[:space:]]*#.*/, ""); if ($0 ~ /[^[:space:]]/) print }' \
    "$REPO_ROOT/README.md")
  ((${#commands[@]})) || die "README.md has no \`\`\`bash block to run"
fi

new_or_empty() { # OPTION DIR: dies unless DIR is unset, new or empty
  [[ -z $2 || ! -e $2 || -z $(ls -A "$2" 2>/dev/null) ]] || die "$1 $2: not a new or empty directory"
}
new_or_empty --keep "$keep_dir"
new_or_empty --logs "$log_dir"

# This machine's Debian mirrors (from its apt sources), else Debian's own; the
# mirror of its own release serves the others as well.
mirror=http://deb.debian.org/debian security_mirror=http://deb.debian.org/debian-security
while read -r uri release; do
  case $release in
    "${DEBIAN_CODENAME:-bookworm}") mirror=${uri%/} ;;
    "${DEBIAN_CODENAME:-bookworm}-security") security_mirror=${uri%/} ;;
  esac
done < <(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null | sort -u)

ensure_debian_packages fresh
for suite in "${suites[@]}"; do
  [[ -e /usr/share/debootstrap/scripts/$suite ]] \
    || die "this debootstrap ($(dpkg-query -W -f='${Version}' debootstrap 2>/dev/null)) does not know $suite: upgrade it"
done

head=$(git -C "$REPO_ROOT" rev-parse HEAD)
[[ -z $(git -C "$REPO_ROOT" status --porcelain --untracked-files=no) ]] \
  || echo "fresh-check.sh: note: uncommitted changes are not checked; the clone is HEAD ${head:0:12}" >&2

[[ -z $keep_dir ]] || { mkdir -p "$keep_dir"; keep_dir=$(cd "$keep_dir" && pwd); }
log_dir=${log_dir:-$(mktemp -d /tmp/fresh-check-logs.XXXXXX)}
mkdir -p "$log_dir"
log_dir=$(cd "$log_dir" && pwd)

# Nothing is mounted under a root in this namespace; removing it stays on its
# file system all the same.
root=''
remove_root() {
  if [[ -z $keep_dir && -n $root && -d $root ]]; then
    if findmnt -rn -o TARGET | grep -q "^$root/"; then
      echo "fresh-check.sh: something is still mounted under $root; left in place" >&2
    else
      rm -rf --one-file-system "$root"
    fi
  fi
  root=''
}
trap 'status=$?; remove_root; exit "$status"' EXIT
trap 'exit 130' INT TERM

elapsed() { printf '%dm %02ds' $(($1 / 60)) $(($1 % 60)); }  # seconds -> "3m 07s"

# The environment in the roots: a login's basics, this environment's proxy, CA
# and package-registry variables.
env_vars=(HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}"
          PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
while IFS= read -r name; do
  env_vars+=("$name=${!name}")
done < <(compgen -e | grep -E -x -i \
  '(https?|ftp|no|all)_proxy|CI|SSL_CERT_(FILE|DIR)|(CURL|REQUESTS|AWS)_CA_BUNDLE|NODE_EXTRA_CA_CERTS|GIT_SSL_CAINFO|CARGO_HTTP_CAINFO|PIP_(CERT|INDEX_URL|EXTRA_INDEX_URL|TRUSTED_HOST|DEFAULT_TIMEOUT)|NPM_CONFIG_(REGISTRY|CAFILE)|CARGO_REGISTRIES_.*')

# Runs in a new mount and PID namespace: the mounts and every process left in the
# root (a wineserver, say) end with it. Command N's output goes to LOG_DIR/N.log, its
# progress lines shown as they come; LOG_DIR/times.tsv gets "N STATUS SECONDS
# DEADLOCK_SECONDS CMD", the root's /root/phases.N.tsv env.sh's phase times.
in_root() {
  set -euo pipefail
  shopt -s lastpipe
  local root=$1 log_dir=$2 timeout_s=$3 n=$4; shift 4
  local env_vars=("${@:1:n}"); shift "$n"
  mount -t proc proc "$root/proc"
  mount -t sysfs sysfs "$root/sys"
  mount --bind /dev "$root/dev"
  mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
  mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/dev/shm"
  local i=0 cmd start status seconds line deadlock log
  for cmd in "$@"; do
    i=$((i + 1))
    echo "== [$i] $cmd"
    start=$SECONDS status=0 deadlock=-
    exec {log}>"$log_dir/$i.log"
    timeout --kill-after=30 "$timeout_s" chroot "$root" /usr/bin/env -i "${env_vars[@]}" \
      TESTDRIVER_PHASE_LOG="/root/phases.$i.tsv" \
      /bin/bash -c 'cd /root/TestDriver && exec bash -c "$1"' bash "$cmd" </dev/null 2>&1 |
      while IFS= read -r line || [[ -n $line ]]; do
        printf '%s\n' "$line" >&"$log"
        case $line in
          '==> '*|'=== '*|'Building '*|'built '*|'all: '*|*DEADLOCK*)
            printf '   %4ss  %s\n' $((SECONDS - start)) "${line:0:150}" ;;
        esac
        [[ $deadlock != - || $line != *DEADLOCK* ]] || deadlock=$((SECONDS - start))
      done || status=${PIPESTATUS[0]}  # (not `set -e`'s: a failing command is recorded, and the next runs)
    exec {log}>&-
    seconds=$((SECONDS - start))
    ((status == 0)) || tail -n 25 "$log_dir/$i.log" | sed 's/^/   | /'
    printf '%s\t%s\t%s\t%s\t%s\n' "$i" "$status" "$seconds" "$deadlock" "$cmd" >>"$log_dir/times.tsv"
    echo "   exit $status after $(elapsed "$seconds")"
  done
  umount "$root/dev/shm" "$root/dev/pts" "$root/dev" "$root/sys" "$root/proc"
}

# The phases of command N in LOGS: "apt 41s  venv 30s  build 62s  run 9s"
# (run: what the others leave of the command's SECONDS; when they overlap, as
# test.sh's do, their sum says so instead).
phases() {
  local logs=$1 n=$2 seconds=$3
  awk -F '\t' -v total="$seconds" '
    { t[$1] += $2 }
    END {
      rest = total
      for (p in t) rest -= t[p]
      out = ""
      split("apt venv build", order, " ")
      for (k = 1; k <= 3; k++) { p = order[k]; out = out sprintf("%s %.0fs  ", p, t[p]) }
      if (rest >= 0) printf "%srun %.0fs", out, rest
      else printf "%sside by side with the run", out
    }' "$logs/phases.$n.tsv" 2>/dev/null || echo "(no phase times)"
}

# SUITE: builds its root, runs the commands there, appends its summary to
# LOG_DIR/summary.txt; returns non-zero when a command failed.
check_suite() {
  local suite=$1 version=${DEBIAN_RELEASES[$1]}
  local logs=$log_dir/$suite start debootstrap_s prepare_s
  root=${keep_dir:+$keep_dir/$suite}
  root=${root:-$(mktemp -d "/var/tmp/fresh-check-$suite.XXXXXX")}
  mkdir -p "$root" "$logs"
  echo "== Debian $version ($suite): debootstrap minbase + git into $root ($mirror)"
  start=$SECONDS
  if ! debootstrap --variant=minbase --include=git "$suite" "$root" "$mirror" \
      >"$logs/debootstrap.log" 2>&1; then
    tail -n 20 "$logs/debootstrap.log" >&2
    echo "fresh-check.sh: debootstrap $suite failed (full log: $logs/debootstrap.log)" >&2
    echo "Debian $version ($suite): debootstrap failed (log: $logs/debootstrap.log)" >>"$log_dir/summary.txt"
    remove_root
    return 1
  fi
  debootstrap_s=$((SECONDS - start))
  echo "   $(elapsed "$debootstrap_s")"

  start=$SECONDS
  # apt: the standard suites from this machine's mirrors, and its Acquire settings.
  rm -f "$root/etc/apt/sources.list"
  {
    printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\n' "$mirror" "$suite" "$suite"
    printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
    if ((with_security)); then
      printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\n' "$security_mirror" "$suite"
      printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
    fi
  } >"$root/etc/apt/sources.list.d/debian.sources"
  apt-config dump | grep -E '^Acquire::((https?|ftp)::|Check-)' \
    >"$root/etc/apt/apt.conf.d/01fresh-check-host" || true
  # Name resolution, CA certificates and package-manager settings of this machine.
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
  cp -L /etc/hosts "$root/etc/hosts"
  if [[ -d /usr/local/share/ca-certificates ]]; then
    mkdir -p "$root/usr/local/share/ca-certificates"
    cp -a /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
  fi
  local f
  for f in /etc/pip.conf /etc/npmrc /root/.npmrc /root/.config/pip/pip.conf /root/.pip/pip.conf \
           /root/.cargo/config.toml /root/.cargo/config; do
    [[ -f $f ]] || continue
    mkdir -p "$root$(dirname "$f")"
    cp -L "$f" "$root$f"
  done

  echo "== clone of HEAD ${head:0:12} into /root/TestDriver"
  # (HEAD may move on while this runs: the clone is put back at the HEAD read above.)
  git clone --quiet --no-local --no-checkout "$REPO_ROOT" "$root/root/TestDriver"
  git -C "$root/root/TestDriver" reset --quiet --hard "$head" \
    || die "the clone has no commit $head (was the branch rewritten?)"
  prepare_s=$((SECONDS - start))

  : >"$logs/times.tsv"
  unshare --mount --pid --fork --propagation private \
    bash -c "$(declare -f in_root elapsed); in_root \"\$@\"" in_root \
    "$root" "$logs" $((timeout_min * 60)) "${#env_vars[@]}" "${env_vars[@]}" "${commands[@]}" || true  # (counted below)

  findmnt -rn -o TARGET | grep "^$root/" && die "mounts were left under $root"
  cp "$root"/root/phases.*.tsv "$logs/" 2>/dev/null || true

  local failed total=0 n status seconds deadlock cmd versions
  versions=$(chroot "$root" dpkg-query -W -f='${Package} ${Version}\n' \
    python3 nodejs wine64 rustc-web lld-19 clang-19 2>/dev/null | awk 'NF == 2' | paste -sd ',' | sed 's/,/, /g') || true
  failed=$(awk -F '\t' '$2 != 0' "$logs/times.tsv" | wc -l)
  # a command that never recorded its end (the chroot itself failed) fails too
  failed=$((failed + ${#commands[@]} - $(wc -l <"$logs/times.tsv")))
  {
    echo "Debian $version ($suite) minbase, suites $suite $suite-updates$( ((with_security)) && echo " $suite-security"), HEAD ${head:0:12}"
    printf '  %-24s %s\n' "debootstrap" "$(elapsed "$debootstrap_s")"
    printf '  %-24s %s\n' "apt sources, clone" "$(elapsed "$prepare_s")"
    while IFS=$'\t' read -r n status seconds deadlock cmd; do
      printf '  %-24s %s  exit %s  (%s)%s\n' "$cmd" "$(elapsed "$seconds")" "$status" \
        "$(phases "$logs" "$n" "$seconds")" "$([[ $deadlock == - ]] || echo "; its DEADLOCK line at ${deadlock}s")"
      total=$((total + seconds))
    done <"$logs/times.tsv"
    printf '  %-24s %s\n' "the commands, in all" "$(elapsed "$total")"
    echo "  versions: ${versions:-unknown}"
    echo "  logs: $logs"
  } | tee -a "$log_dir/summary.txt"
  remove_root
  ((failed == 0))
}

failed=0
: >"$log_dir/summary.txt"
for suite in "${suites[@]}"; do
  check_suite "$suite" || failed=$((failed + 1))
  echo
done
echo "fresh-check:"
cat "$log_dir/summary.txt"
((failed == 0))
