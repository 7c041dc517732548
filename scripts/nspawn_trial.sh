#!/bin/sh
# The unit under a real systemd 252, booted in a systemd-nspawn container
# from a debootstrap'd Debian 12 (docs/service.md §9). Not in make check:
# it downloads a base system (~150 MB) and needs root; run by hand:
#
#   make deb && sh scripts/nspawn_trial.sh [ROOT]
#
# ROOT (default /var/tmp/backmx-nspawn) is made once and reused. Needs
# debootstrap and systemd-container (apt-get install them).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
root=${1:-/var/tmp/backmx-nspawn}
deb=$(ls "$repo"/build-deb/backmx_*_amd64.deb)
mirror=$(grep -h '^URIs' /etc/apt/sources.list.d/debian.sources 2>/dev/null |
    head -1 | awk '{print $2}')

if [ ! -x "$root/bin/systemctl" ]; then
	debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,python3,python3-dnslib \
	    bookworm "$root" "${mirror:-http://deb.debian.org/debian}"
fi
cp "$deb" "$root/tmp/backmx.deb"
cp /etc/resolv.conf "$root/etc/resolv.conf"
chroot "$root" apt-get install -y -qq --no-install-recommends /tmp/backmx.deb
# The operator's part: loopback, a fake DNS and primary (tests/fakes).
conf="$root/etc/backmx/backmx.conf"
grep -q '^# nspawn trial' "$conf" || cat >> "$conf" <<'CONF'
# nspawn trial: loopback only, the fakes of tests/fakes.
myhostname = mx2.nspawn.test
dns_forward = 127.0.0.1@53
dns_trust_anchor_file =
greylist = no
passthrough = no
accept_unverified = yes
domain_learning = no
CONF
grep -q '^customer.example' "$root/etc/backmx/domains" ||
    echo 'customer.example route=[127.0.0.1]:2526' >> "$root/etc/backmx/domains"
mkdir -p "$root/opt/fakes"
cp "$repo/tests/fakes/dns.py" "$repo/tests/fakes/mx.py" "$root/opt/fakes/"
cp "$here/nspawn/fakes_run.py" "$root/opt/fakes/run.py"
install -m 0755 "$here/nspawn/bmxcheck" "$root/usr/local/bin/bmxcheck"
cp "$here/nspawn/bmxcheck.service" "$root/etc/systemd/system/"
chroot "$root" systemctl enable backmx bmxcheck
rm -f "$root/root/bmxcheck.out"
# --keep-unit --register=no: the host need not run systemd itself.
timeout -k 5 300 systemd-nspawn -D "$root" -b --private-network \
    --console=read-only --register=no --keep-unit -M backmx-trial \
    >/dev/null 2>&1 || true
cat "$root/root/bmxcheck.out"
