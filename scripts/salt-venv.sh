#!/usr/bin/env bash
# Real Salt for the tests: a Python venv holding salt==3008.5 from PyPI, built once and cached
# outside the checkout (/var/cache/qubes-air/salt-venv as root, else
# ${XDG_CACHE_HOME:-$HOME/.cache}/qubes-air/salt-venv; QUBES_AIR_SALT_VENV overrides). Prints the
# venv's path on stdout (its bin/ holds salt-call and salt-ssh) and nothing else there.
# Used by test/integration/salt*.test.ts and by the salt-ssh tests; safe to run concurrently
# (flock) and repeatedly (a stamp file names the installed version; a half-built venv is
# removed and rebuilt).
# Why --no-deps plus a list: salt 3008.5 ships as an sdist whose metadata pins dependencies newer
# than PyPI mirrors carry (certifi>=2026.10.23 and the like), and pulls in what salt-call --local
# never imports (aiohttp, libcloud, opentelemetry, cherrypy). Salt itself is the real 3008.5;
# its dependencies are the ones the local state runner imports, at whatever PyPI resolves.
# Must never: write into the checkout, install into the system Python, or print anything but
# the path on stdout.
set -euo pipefail

SALT_VERSION=3008.5
if [ -n "${QUBES_AIR_SALT_VENV:-}" ]; then
  venv=$QUBES_AIR_SALT_VENV
elif [ "$(id -u)" = 0 ]; then
  venv=/var/cache/qubes-air/salt-venv
else
  venv=${XDG_CACHE_HOME:-$HOME/.cache}/qubes-air/salt-venv
fi
stamp="$venv/.qubes-air-salt-$SALT_VERSION"
if [ -f "$stamp" ]; then echo "$venv"; exit 0; fi

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
# Another run may have finished while this one waited for the lock.
if [ -f "$stamp" ]; then echo "$venv"; exit 0; fi

py=${PYTHON:-python3}
if ! "$py" -c 'import venv, ensurepip' 2>/dev/null; then
  echo "salt-venv: $py lacks venv/ensurepip; install Debian's python3-venv (scripts/system-deps.sh does, as root)" >&2
  exit 1
fi
rm -rf "$venv"
echo "salt-venv: building $venv (salt==$SALT_VERSION from PyPI)" >&2
"$py" -m venv "$venv" >&2
# pip's log is shown only on failure: the second install always reports salt's unmet pins
# (the point of --no-deps), which is noise, not an error.
log="$venv.pip.log"
pip() {
  if ! "$venv/bin/python" -m pip install -q --disable-pip-version-check "$@" >"$log" 2>&1; then
    cat "$log" >&2
    echo "salt-venv: pip install $* failed (is PyPI reachable?)" >&2
    exit 1
  fi
}
pip --no-deps "salt==$SALT_VERSION"
pip Jinja2 MarkupSafe PyYAML msgpack looseversion packaging distro psutil tornado jmespath \
  pycryptodomex requests certifi cryptography python-dateutil
"$venv/bin/salt-call" --version >&2
touch "$stamp"
echo "$venv"
