#!/bin/sh
# build-aux/install.sh install|uninstall - what `make install` and
# `make uninstall` do (the Makefile passes the directories in the
# environment).
#
# install puts every part in place: the binary and the man page, vmsync-run
# and the systemd units, the snapper plugin and wrapper, an example config
# (only if none of that name exists) and the documentation.  The paths the
# units, scripts and the cron example name are rewritten to where things
# were installed.  Each file written and each directory made is recorded
# in a manifest, $LIBEXECDIR/vmsync/install-manifest:
#   f PATH   a file install wrote
#   c PATH   the example config install wrote (removed only if unchanged)
#   d PATH   a directory install made (removed if empty)
# Paths are without DESTDIR.  A second install adds to the manifest.
#
# uninstall removes what the manifest lists, then the manifest: nothing
# that install did not write, and no config that was changed since.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
D=${DESTDIR:-}
val=
for v in BINDIR LIBEXECDIR MANDIR SYSTEMDUNITDIR SYSCONFDIR DOCDIR \
	SNAPPERPLUGINDIR; do
	eval "val=\${$v:?$v is not set}"
	# The directories go into sed replacements and shell scripts.
	case $val in
	/*) ;;
	*) echo "install.sh: $v=$val: not an absolute path" >&2; exit 1 ;;
	esac
	case $val in
	*[\|\&\\\'\"\ ]*)
		echo "install.sh: $v=$val: | & \\ quotes and spaces are not supported" >&2
		exit 1 ;;
	esac
done
manifest=$LIBEXECDIR/vmsync/install-manifest
example=contrib/systemd/EXAMPLE.conf

# rewrite SRC: SRC with the paths it names as installed.  The contrib files
# name the default /usr/local places and /etc/vmsync.
rewrite() {
	sed -e "s|/usr/local/lib/vmsync/|$LIBEXECDIR/vmsync/|g" \
	    -e "s|/usr/local/bin/vmsync|$BINDIR/vmsync|g" \
	    -e "s|/etc/vmsync/|$SYSCONFDIR/vmsync/|g" \
	    -e "s|\${VMSYNC:-vmsync}|\${VMSYNC:-$BINDIR/vmsync}|g" "$1"
}

do_install() {
	[ -x "${VMSYNC_BIN:-}" ] || { echo "install.sh: no binary: ${VMSYNC_BIN:-}" >&2; exit 1; }
	new=$(mktemp)
	trap 'rm -f "$new" "$new.tmp"' EXIT

	# mkdirs DIR: make DIR and its missing parents; record each one made.
	mkdirs() {
		d=$1
		while [ "$d" != / ] && [ ! -d "$D$d" ]; do
			echo "d $d" >> "$new"
			d=$(dirname "$d")
		done
		install -d "$D$1"
	}
	# put MODE SRC DEST [rewrite]: install SRC (relative to the top of
	# the tree, or absolute) as DEST; record it as a $kind.
	kind=f
	put() {
		case $2 in /*) src=$2 ;; *) src=$top/$2 ;; esac
		mkdirs "$(dirname "$3")"
		if [ "${4-}" = rewrite ]; then
			rewrite "$src" > "$new.tmp"
			install -m "$1" "$new.tmp" "$D$3"
		else
			install -m "$1" "$src" "$D$3"
		fi
		echo "  INSTALL $D$3"
		echo "$kind $3" >> "$new"
	}

	put 755 "$VMSYNC_BIN" "$BINDIR/vmsync"
	put 644 man/vmsync.1 "$MANDIR/man1/vmsync.1"
	put 644 man/vmsync-snapper.1 "$MANDIR/man1/vmsync-snapper.1"
	put 755 contrib/systemd/vmsync-run "$LIBEXECDIR/vmsync/vmsync-run" rewrite
	put 644 contrib/systemd/vmsync@.service "$SYSTEMDUNITDIR/vmsync@.service" rewrite
	put 644 contrib/systemd/vmsync@.timer "$SYSTEMDUNITDIR/vmsync@.timer" rewrite
	put 755 contrib/snapper/50-vmsync "$SNAPPERPLUGINDIR/50-vmsync" rewrite
	put 755 contrib/snapper/vmsync-snapper "$BINDIR/vmsync-snapper" rewrite
	put 644 README.md "$DOCDIR/README.md"
	put 644 contrib/systemd/README.md "$DOCDIR/systemd/README.md"
	put 644 contrib/snapper/README.md "$DOCDIR/snapper/README.md"
	put 644 contrib/cron/README.md "$DOCDIR/cron/README.md"
	put 644 contrib/cron/vmsync.cron "$DOCDIR/cron/vmsync.cron" rewrite
	# contrib/ssh has no helper: the forced command is one line of
	# authorized_keys, documented in its README.
	put 644 contrib/ssh/README.md "$DOCDIR/ssh/README.md"

	conf=$SYSCONFDIR/vmsync/EXAMPLE.conf
	if [ -e "$D$conf" ] || [ -L "$D$conf" ]; then
		echo "  KEEP    $D$conf (exists)"
	else
		kind=c
		put 644 "$example" "$conf" rewrite
		kind=f
	fi

	# Merge with an earlier install's manifest, first entries first.
	if [ -f "$D$manifest" ]; then
		cat "$D$manifest" "$new" | awk '!seen[$0]++' > "$new.tmp"
		cp "$new.tmp" "$new"
	fi
	mkdirs "$(dirname "$manifest")"
	grep -qx "f $manifest" "$new" || echo "f $manifest" >> "$new"
	install -m 644 "$new" "$D$manifest"
}

do_uninstall() {
	if [ ! -f "$D$manifest" ]; then
		echo "install.sh: no $D$manifest: nothing installed there" \
			"(give make uninstall the same PREFIX, DESTDIR and" \
			"LIBEXECDIR as make install)" >&2
		exit 1
	fi
	dirs=$(sed -n 's/^d //p' "$D$manifest" | awk '{ print length($0) " " $0 }' |
		sort -rn | cut -d' ' -f2-)
	while read -r kind path; do
		case $kind in
		f)
			[ "$path" = "$manifest" ] && continue
			[ -e "$D$path" ] || [ -L "$D$path" ] || continue
			rm -f "$D$path"
			echo "  RM      $D$path" ;;
		c)
			[ -e "$D$path" ] || continue
			if rewrite "$top/$example" | cmp -s "$D$path" -; then
				rm -f "$D$path"
				echo "  RM      $D$path"
			else
				echo "  KEEP    $D$path (changed since make install)"
			fi ;;
		esac
	done < "$D$manifest"
	rm -f "$D$manifest"
	# Deepest first; a directory that holds something else stays.
	printf '%s\n' "$dirs" | while IFS= read -r d; do
		[ -n "$d" ] || continue
		rmdir "$D$d" 2>/dev/null || true
	done
}

case ${1-} in
install) do_install ;;
uninstall) do_uninstall ;;
*) echo "usage: install.sh install|uninstall" >&2; exit 1 ;;
esac
