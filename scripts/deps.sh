#!/bin/sh
# Install the Debian packages backmx needs to build, test, fuzz and run.
# Does nothing when they are all there; otherwise one apt-get update and one
# apt-get install. Safe to run on every `make`.
set -eu

PKGS="build-essential pkg-config meson ninja-build clang-14 libclang-rt-14-dev
 libevent-dev libssl-dev libunbound-dev libsqlite3-dev libhiredis-dev
 libidn2-dev dns-root-data
 libcmocka-dev sqlite3 openssl python3 python3-dnslib python3-aiosmtpd
 fiu-utils libfiu-dev
 groff-base man-db systemd
 prometheus
 rspamd spamassassin spamd spamc spamass-milter
 chromium
 debhelper lintian dpkg-dev fakeroot
 strace iproute2 faketime
 redis-server redis-sentinel"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

echo "deps: installing$missing" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
