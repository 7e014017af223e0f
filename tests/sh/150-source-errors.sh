#!/usr/bin/env bash
# Proves: bad sources get a one-line error naming the file and exit 2, and
# nothing is created at the target: a missing file, a directory, a file the
# user cannot read, a character device, a FIFO, and images in formats not
# read yet (qcow2, vmdk), which --format=raw copies byte for byte instead.
. "$VMSYNC_TOP/tests/functions.sh"
requires qemu-img setpriv

out=$TMP/out
mkdir "$out"
nothing_created() {
	[ -z "$(ls -A "$out")" ] || fail "created at the target: $(ls -A "$out")"
}

must_fail 2 "$TMP/missing.img: cannot open source: No such file or directory" \
	vs "$TMP/missing.img" "$out/"
nothing_created
mkdir "$TMP/dir.img"
must_fail 2 "$TMP/dir.img: source is a directory" vs "$TMP/dir.img" "$out/"
nothing_created
must_fail 2 "/dev/null: source is not a regular file or a block device" \
	vs /dev/null "$out/null.img"
nothing_created
mkfifo "$TMP/fifo"
must_fail 2 "$TMP/fifo: source is not a regular file or a block device" \
	timeout 10 "$VMSYNC" "$TMP/fifo" "$out/"
nothing_created

if [ "$(id -u)" -eq 0 ]; then
	"$HOLES" make "$TMP/secret.img" 1M 0:4K:1
	chmod 600 "$TMP/secret.img"
	chmod 755 "$TMP"
	chmod 777 "$out"
	must_fail 2 "$TMP/secret.img: cannot open source: Permission denied" \
		setpriv --reuid=nobody --regid=nogroup --clear-groups \
		"$VMSYNC" "$TMP/secret.img" "$out/"
	nothing_created
fi

qemu-img create -q -f qcow2 "$TMP/vm.qcow2" 64M
must_fail 2 "$TMP/vm.qcow2: qcow2 image: this format is not supported yet" \
	vs "$TMP/vm.qcow2" "$out/"
nothing_created
qemu-img create -q -f vmdk "$TMP/vm.vmdk" 64M
must_fail 2 "$TMP/vm.vmdk: vmdk image" vs "$TMP/vm.vmdk" "$out/"
nothing_created
vs -q --format=raw "$TMP/vm.qcow2" "$out/"
cmp "$TMP/vm.qcow2" "$out/vm.qcow2" || fail "--format=raw copy differs"

# Several sources, one bad: the good ones are synced, exit 4 (partial).
"$HOLES" make "$TMP/good.img" 1M 0:64K:2
rc=0
vs -q "$TMP/good.img" "$TMP/missing.img" "$out/" 2> "$TMP/err" || rc=$?
[ "$rc" -eq 4 ] || fail "one bad source of two: exit $rc, want 4"
cmp "$TMP/good.img" "$out/good.img" || fail "good source not synced"
