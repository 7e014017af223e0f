#!/usr/bin/env bash
# Proves: a qcow2 with an external data file, on btrfs, is read from a
# point-in-time clone of the image, but its data file is read where it
# is: when a running VM (qemu) holds that data file, the run says the copy
# may be torn, once, naming the data file; without one it says nothing.
# (The image read live, not cloned, has the image's own warning instead.)
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires qemu-img qemu-io

mnt=$(mkbtrfs 1G)
src=$mnt/src
mkdir "$src" "$TMP/out"
cd "$src" || fail "cd $src"
qemu-img create -q -f qcow2 -o data_file=df.raw df.qcow2 16M
qemu-io -f qcow2 -c 'write -P 1 0 1M' df.qcow2 > /dev/null

vs -O raw df.qcow2 "$TMP/out/" 2> "$TMP/err" || fail "no VM: exit $?"
! grep -q "torn" "$TMP/err" || fail "no VM: $(cat "$TMP/err")"

qemu_hold df.raw
vs -O raw df.qcow2 "$TMP/out/" 2> "$TMP/err" || fail "held: exit $?"
[ "$(grep -c "torn" "$TMP/err")" -eq 1 ] &&
	grep -q "^vmsync: warning: df.qcow2: a running VM (qemu) writes its data file df.raw, which is read live" "$TMP/err" ||
	fail "held: $(cat "$TMP/err")"
qemu_release
qemu-img convert -O raw df.qcow2 "$TMP/want.raw"
cmp "$TMP/out/df.raw" "$TMP/want.raw" || fail "the copy differs"
echo "ok"
