#!/usr/bin/env bash
# Checks README.md's promise on a fresh machine: builds a minimal Debian 12 root
# (debootstrap --variant=minbase, plus git; apt sources bookworm,
# bookworm-updates and bookworm-security), clones the committed HEAD into it,
# runs there, as root in a chroot, the commands README.md's first bash block
# holds (`bash linux/demo.sh`, `bash linux/test.sh`) and prints how long each took.
#
#   sudo bash linux/fresh-check.sh [OPTIONS]
#
#   --without-security  leave bookworm-security out of the root's apt sources
#                       (Debian's Rust is then 1.85: the commands must say so)
#   --keep DIR          build the root in DIR (new or empty) and keep it afterwards
#   --logs DIR          write each command's full output there (default: a new
#                       directory under /tmp, named at the end)
#   --timeout MINUTES   stop a command that runs longer (default: 60)
#   --command CMD       run CMD (in the clone, with bash) instead of README's
#                       commands; may be repeated
#
# The root reaches what this machine reaches: it gets this machine's apt mirrors
# and Acquire settings (proxies), its own CA certificates (those added under
# /usr/local/share/ca-certificates; the bundle is built in the root only when a
# command installs Debian's ca-certificates), its pip/npm/cargo configuration
# files, and the proxy and CA variables of this environment. /proc, /sys, /dev,
# /dev/pts and /dev/shm are mounted in a private mount namespace, so they are
# gone when the check ends, however it ends. Needs root and about 6 GB free.
# Exits 0 when every command exited 0.
set -euo pipefail
source "$(dirname "$0")/env.sh"

usage() { sed -n '2,29s/^# \{0,1\}//p' "$0"; }
die() { echo "fresh-check.sh: $*" >&2; exit 2; }

with_security=1 keep_dir='' log_dir='' timeout_min=60 commands=()
while (($#)); do
  case $1 in
    --without-security) with_security=0 ;;
    --keep|--logs|--timeout|--command)
      (($# >= 2)) && [[ -n $2 ]] || { usage >&2; die "$1 needs a value"; }
      case $1 in
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

# This machine's Debian mirrors (from its apt sources), else Debian's own.
mirror=http://deb.debian.org/debian security_mirror=http://deb.debian.org/debian-security
while read -r uri release; do
  case $release in
    bookworm) mirror=${uri%/} ;;
    bookworm-security) security_mirror=${uri%/} ;;
  esac
done < <(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null | sort -u)

ensure_debian_packages fresh

head=$(git -C "$REPO_ROOT" rev-parse HEAD)
[[ -z $(git -C "$REPO_ROOT" status --porcelain --untracked-files=no) ]] \
  || echo "fresh-check.sh: note: uncommitted changes are not checked; the clone is HEAD ${head:0:12}" >&2

root=${keep_dir:-$(mktemp -d /var/tmp/fresh-check.XXXXXX)}
mkdir -p "$root"
root=$(cd "$root" && pwd)
log_dir=${log_dir:-$(mktemp -d /tmp/fresh-check-logs.XXXXXX)}
mkdir -p "$log_dir"

# Nothing is mounted under $root in this namespace (the mounts live in the
# check's own namespace); removing it stays on its file system all the same.
cleanup() {
  local status=$?
  if [[ -z $keep_dir && -d $root ]]; then
    if findmnt -rn -o TARGET | grep -q "^$root/"; then
      echo "fresh-check.sh: something is still mounted under $root; left in place" >&2
    else
      rm -rf --one-file-system "$root"
    fi
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

elapsed() { # seconds -> "3m 07s"
  printf '%dm %02ds' $(($1 / 60)) $(($1 % 60))
}

echo "== debootstrap: Debian 12 minbase + git into $root ($mirror)"
start=$SECONDS
if ! debootstrap --variant=minbase --include=git bookworm "$root" "$mirror" \
    >"$log_dir/debootstrap.log" 2>&1; then
  tail -n 20 "$log_dir/debootstrap.log" >&2
  die "debootstrap failed (full log: $log_dir/debootstrap.log)"
fi
debootstrap_s=$((SECONDS - start))
echo "   $(elapsed "$debootstrap_s")"

# apt: the standard suites from this machine's mirrors, and its Acquire settings.
rm -f "$root/etc/apt/sources.list"
{
  printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\n' "$mirror"
  printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
  if ((with_security)); then
    printf '\nTypes: deb\nURIs: %s\nSuites: bookworm-security\nComponents: main\n' "$security_mirror"
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

# The environment in the root: a login's basics, and this environment's
# proxy, CA and package-registry variables.
env_vars=(HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}"
          PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
while IFS= read -r name; do
  env_vars+=("$name=${!name}")
done < <(compgen -e | grep -E -x -i \
  '(https?|ftp|no|all)_proxy|CI|SSL_CERT_(FILE|DIR)|(CURL|REQUESTS|AWS)_CA_BUNDLE|NODE_EXTRA_CA_CERTS|GIT_SSL_CAINFO|CARGO_HTTP_CAINFO|PIP_(CERT|INDEX_URL|EXTRA_INDEX_URL|TRUSTED_HOST|DEFAULT_TIMEOUT)|NPM_CONFIG_(REGISTRY|CAFILE)|CARGO_REGISTRIES_.*')

# Runs in a new mount and PID namespace: the mounts and every process left in
# the root (a wineserver, say) end with it.
in_root() {
  set -euo pipefail
  local root=$1 log_dir=$2 timeout_s=$3 n=$4; shift 4
  local env_vars=("${@:1:n}"); shift "$n"
  mount -t proc proc "$root/proc"
  mount -t sysfs sysfs "$root/sys"
  mount --bind /dev "$root/dev"
  mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
  mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/dev/shm"
  local i=0 cmd start status seconds
  for cmd in "$@"; do
    i=$((i + 1))
    echo "== [$i] $cmd"
    start=$SECONDS
    status=0
    timeout --kill-after=30 "$timeout_s" chroot "$root" /usr/bin/env -i "${env_vars[@]}" \
      /bin/bash -c 'cd /root/TestDriver && exec bash -c "$1"' bash "$cmd" \
      </dev/null >"$log_dir/$i.log" 2>&1 || status=$?
    tail -n 25 "$log_dir/$i.log" | sed 's/^/   | /'
    seconds=$((SECONDS - start))
    echo "$i	$status	$seconds	$cmd" >>"$log_dir/times.tsv"
    echo "   exit $status after $(elapsed "$seconds")"
  done
  umount "$root/dev/shm" "$root/dev/pts" "$root/dev" "$root/sys" "$root/proc"
}

: >"$log_dir/times.tsv"
unshare --mount --pid --fork --propagation private \
  bash -c "$(declare -f in_root elapsed); in_root \"\$@\"" in_root \
  "$root" "$log_dir" $((timeout_min * 60)) "${#env_vars[@]}" "${env_vars[@]}" "${commands[@]}"

findmnt -rn -o TARGET | grep "^$root/" && die "mounts were left under $root"

echo
echo "fresh-check: Debian 12 minbase, suites bookworm bookworm-updates$( ((with_security)) && echo ' bookworm-security'), HEAD ${head:0:12}"
printf '  %-28s %s\n' "debootstrap" "$(elapsed "$debootstrap_s")"
failed=0 total=0
while IFS=$'\t' read -r _ status seconds cmd; do
  printf '  %-28s %s  exit %s\n' "$cmd" "$(elapsed "$seconds")" "$status"
  total=$((total + seconds))
  ((status == 0)) || failed=$((failed + 1))
done <"$log_dir/times.tsv"
printf '  %-28s %s\n' "the commands, in all" "$(elapsed "$total")"
echo "  logs: $log_dir"
((failed == 0))
