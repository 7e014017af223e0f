#!/usr/bin/env bash
# Proves: an absolute backing file name that reaches the image's directory
# through a symbolic link to it, as libvirt records the backing files of
# its external snapshots when its images directory is such a link
# (/var/lib/libvirt/images -> /srv/images), is followed when that
# directory is allowed as it was named: SRC named through the link (also
# in a working directory entered through it), or a --backing-dir naming
# the link.  Both views sync, the guest disk equals qemu-img convert.
# Names were compared with the directories' real paths only, so such a
# chain was refused (exit 2) whatever the user allowed.
# Still refused without either: the real path of SRC's directory does not
# spell the name.
. "$VMSYNC_TOP/tests/functions.sh"
. "$VMSYNC_TOP/tests/qcow2.sh"
requires qemu-img qemu-io jq

real=$TMP/srv/images
link=$TMP/images
mkdir -p "$real" "$TMP/out" "$TMP/empty"
ln -s srv/images "$link"
qemu-img create -q -f qcow2 "$real/base.qcow2" 4M
qemu-io -f qcow2 -c 'write -P 0x11 0 4M' "$real/base.qcow2" > /dev/null
qemu-img create -q -f qcow2 -b "$link/base.qcow2" -F qcow2 "$real/top.qcow2"
qemu-io -f qcow2 -c 'write -P 0x22 1M 64k' "$real/top.qcow2" > /dev/null

# Named through the link, and with the link as --backing-dir.
for args in "$link/top.qcow2" "--backing-dir=$link $real/top.qcow2"; do
	rm -f "$TMP"/out/*
	# shellcheck disable=SC2086
	vs -q -O raw $args "$TMP/out/" || fail "-O raw $args: exit $?"
	guest_ok "$real/top.qcow2" "$TMP/out/top.raw" "$args"
	# shellcheck disable=SC2086
	vs -q $args "$TMP/out/" || fail "file view $args: exit $?"
	cmp "$real/top.qcow2" "$TMP/out/top.qcow2" || fail "file view $args"
done

# SRC named in the working directory, entered through the link ($PWD).
rm -f "$TMP"/out/*
(cd "$link" && vs -q -O raw top.qcow2 "$TMP/out/") ||
	fail "-O raw top.qcow2 in $link: exit $?"
guest_ok "$real/top.qcow2" "$TMP/out/top.raw" "top.qcow2 in $link"

# Neither: refused as before, nothing created.
must_fail 2 "top\\.qcow2: backing file '.*/images/base\\.qcow2' refused" \
	vs -q -O raw "$real/top.qcow2" "$TMP/empty/"
[ -z "$(ls -A "$TMP/empty")" ] || fail "the refusal left $(ls -A "$TMP/empty")"
echo "ok"
