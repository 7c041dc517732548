#!/bin/sh
# What `meson install` cannot do alone (docs/service.md "Install"):
#
#   install.sh install CONF DOMAINS SYSCONFDIR LOCALSTATEDIR USER
#       (run by meson install, DESTDIR in the environment) the example
#       configuration under SYSCONFDIR/backmx unless a file is already
#       there, and the spool and state folders, 0700; as root into the
#       real root, owned by USER (a system user made when missing).
#   install.sh uninstall PREFIX SYSCONFDIR LOCALSTATEDIR CONF DOMAINS
#       (run by make uninstall, DESTDIR in the environment) removes what
#       install put there: the programs, man pages and unit; the
#       configuration only where it is still the example; the folders
#       only when empty, so a queue that holds mail is never deleted.
set -eu

D="${DESTDIR:-}"
mode="$1"
shift

# Empty folders from DIR up to (not including) STOP.
rmdir_up() {
	dir="$1"
	while [ "$dir" != "$2" ] && [ "$dir" != "/" ] && [ -d "$dir" ]; do
		rmdir "$dir" 2>/dev/null || return 0
		dir=$(dirname "$dir")
	done
}

case "$mode" in
install)
	conf="$1" domains="$2" etc="$D$3/backmx" var="$D$4/lib/backmx"
	user="$5"
	mkdir -p "$etc"
	# Never over an operator's file: theirs stays, ours is the .example.
	for f in "$conf:backmx.conf" "$domains:domains"; do
		src="${f%%:*}" name="${f##*:}"
		if [ -e "$etc/$name" ] && ! cmp -s "$src" "$etc/$name"; then
			install -m 0644 "$src" "$etc/$name.example"
			echo "install: kept $etc/$name (the new example is $name.example)"
		else
			install -m 0644 "$src" "$etc/$name"
		fi
	done
	mkdir -p "$var/spool" "$var/state"
	chmod 0700 "$var" "$var/spool" "$var/state"
	if [ -z "$D" ] && [ "$(id -u)" -eq 0 ]; then
		if ! getent passwd "$user" >/dev/null; then
			useradd --system --user-group --no-create-home \
			    --home-dir "$4/lib/backmx" --shell /usr/sbin/nologin \
			    "$user"
			echo "install: made the system user $user"
		fi
		chown "$user:" "$var" "$var/spool" "$var/state"
	fi
	;;
uninstall)
	prefix="$D$1" etc="$D$2/backmx" var="$D$3/lib/backmx"
	conf="$4" domains="$5"
	# Into a DESTDIR everything goes, up to it; in the real root
	# only our own folders, never /usr/local/sbin or /etc.
	top_p="${D:-$1}" top_e="${D:-$2}" top_v="${D:-$3/lib}"
	for f in sbin/backmxd sbin/backmxctl lib/systemd/system/backmx.service \
	    share/man/man8/backmxd.8 share/man/man8/backmxctl.8 \
	    share/man/man5/backmx.conf.5; do
		rm -f "$prefix/$f"
		rmdir_up "$(dirname "$prefix/$f")" "$top_p"
	done
	for f in backmx.conf domains; do
		# An example left as it was goes; an edited file stays.
		for ex in "$etc/$f.example" "$etc/$f"; do
			[ -e "$ex" ] || continue
			src="$domains"
			[ "$f" = backmx.conf ] && src="$conf"
			if cmp -s "$src" "$ex"; then
				rm -f "$ex"
			elif [ "$ex" = "$etc/$f" ]; then
				echo "uninstall: kept $ex (changed)"
			fi
		done
	done
	rmdir_up "$etc" "$top_e"
	for dir in "$var/spool" "$var/state"; do
		if [ -d "$dir" ] && ! rmdir "$dir" 2>/dev/null; then
			echo "uninstall: kept $dir (not empty)"
		fi
	done
	rmdir_up "$var" "$top_v"
	;;
*)
	echo "usage: install.sh install|uninstall ..." >&2
	exit 64
	;;
esac
