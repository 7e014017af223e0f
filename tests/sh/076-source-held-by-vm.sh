#!/usr/bin/env bash
# Proves: a source is read through a point-in-time clone wherever its
# filesystem can clone it, not only on btrfs, and a live read that a
# running VM could tear says so.
#  - On XFS with reflink, a slow push copies the image as it was when the
#    run started, though it is rewritten meanwhile (the push still running
#    then); the clone is not kept as a base (change detection needs
#    btrfs): nothing is left in .vmsync.
#  - On a filesystem that cannot clone (ext4), a source that a running
#    qemu holds for writing (qemu-io, its OFD lock bytes) is read live with
#    one warning that the copy may be torn, naming the remedy; without
#    qemu, no warning.  Both runs exit 0 and copy the image.
. "$VMSYNC_TOP/tests/functions.sh"
requires_root
requires mkfs.xfs mkfs.ext4 losetup qemu-io
[ -w /dev/loop-control ] || skip "needs /dev/loop-control"
grep -qw xfs /proc/filesystems || skip "kernel has no XFS"

fsmount() {	# fsmount TYPE: a fresh filesystem on a loop device
	local img=$TMP/$1.img mnt=$TMP/$1
	truncate -s 512M "$img"
	if [ "$1" = xfs ]; then
		mkfs.xfs -q -f -m reflink=1 "$img" || fail "mkfs.xfs"
	else
		mkfs.ext4 -q -F "$img" || fail "mkfs.ext4"
	fi
	mkdir "$mnt"
	mount -o loop "$img" "$mnt" || skip "cannot mount $1"
	cleanup_fn "umount -l '$mnt' 2>/dev/null"
	echo "$mnt"
}

# --- XFS: point in time.
x=$(fsmount xfs)
pit=$x/pit.img
"$HOLES" make "$pit" 16M 0:4M:5
cp --sparse=always "$pit" "$TMP/pit.orig"
mkdir "$TMP/pushed"
rvs -q --bwlimit=1M "$pit" "host:$TMP/pushed/" &
pid=$!
cleanup_fn "kill $pid 2>/dev/null"
for _ in $(seq 1000); do
	[ -e "$TMP/pushed/pit.img" ] && break
	kill -0 "$pid" 2> /dev/null || break
	sleep 0.01
done
[ -e "$TMP/pushed/pit.img" ] || fail "the push did not start"
"$HOLES" fill "$pit" 0:4M:6
kill -0 "$pid" 2> /dev/null ||
	fail "the push ended before the image was rewritten: nothing was tested"
wait "$pid" || fail "the slow push failed"
cmp "$TMP/pit.orig" "$TMP/pushed/pit.img" ||
	fail "XFS: the push is not the image as it was at its start"
[ -d "$x/.vmsync" ] || fail "XFS: no clone was made"
[ -z "$(ls -A "$x/.vmsync" | grep -v '\.lock$')" ] ||
	fail "XFS: left in .vmsync: $(ls -A "$x/.vmsync")"

# --- ext4: no clone; a VM writing the image is said.
e=$(fsmount ext4)
src=$e/vm.img
"$HOLES" make "$src" 32M 0:1M:1 16M:1M:2
mkdir "$TMP/b"
vs "$src" "$TMP/b/" 2> "$TMP/err" || fail "ext4: exit $?"
! grep -q "torn" "$TMP/err" || fail "ext4, no VM: $(cat "$TMP/err")"
mkfifo "$TMP/qcmd"
qemu-io -f raw "$src" < "$TMP/qcmd" > "$TMP/qout" 2>&1 &
qpid=$!
cleanup_fn "kill $qpid 2>/dev/null"
exec 7> "$TMP/qcmd"
ino=$(stat -c %i "$src")
for _ in $(seq 500); do
	grep -q "OFDLCK .*:$ino " /proc/locks && break
	sleep 0.01
done
grep -q "OFDLCK .*:$ino " /proc/locks || fail "qemu-io did not lock $src"
"$HOLES" fill "$src" 4M:64K:3
vs "$src" "$TMP/b/" 2> "$TMP/err" || fail "ext4, VM: exit $?"
grep -q "^vmsync: warning: $src: a running VM (qemu) writes this image and it cannot be cloned here: the copy may be torn (sync from a snapshot" \
	"$TMP/err" && [ "$(wc -l < "$TMP/err")" -eq 1 ] ||
	fail "ext4, VM: not one warning: $(cat "$TMP/err")"
echo quit >&7
exec 7>&-
wait "$qpid" 2>/dev/null || true
same "$src" "$TMP/b/vm.img"
