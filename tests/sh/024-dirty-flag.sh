#!/usr/bin/env bash
# Proves: a trusted run that ends without commit leaves the index dirty, and
# the dirty flag alone makes the next run distrust it, even when the
# target's identity (device, inode, size, mtime, ctime) is exactly what the
# index recorded.  A trusted update writes one sector (in the middle of a
# data region, away from the blocks every run's spot check of the index
# reads: the first and last, the first and last holding data) and records
# its new entry in an index kept on another filesystem (--index), then fails (no
# space) before commit.  The target's filesystem is then put back as it was
# before that run, as after a crash that lost the unsynced target writes but
# not the index writes: the target holds the old sector and its identity is
# unchanged.  The next run must not trust the index ("rebuilt"), compares
# with the target, writes that one sector again and ends equal; the run
# after it is trusted and does nothing.
. "$VMSYNC_TOP/tests/functions.sh"
requires_root
requires qemu-img jq losetup mkfs.ext4 fallocate
[ -w /dev/loop-control ] || skip "needs /dev/loop-control"

# ext4 on a loop device: remounted on the same device, the target keeps its
# st_dev, and restoring the filesystem's bytes restores its times.
img=$TMP/ext4.img
mnt=$TMP/mnt
truncate -s 64M "$img"
mkfs.ext4 -q -F -m 0 "$img" || fail "mkfs.ext4"
dev=$(mkloopdev "$img")
mkdir "$mnt"
mount -t ext4 "$dev" "$mnt" || skip "cannot mount ext4"
cleanup_fn "umount -l '$mnt' 2>/dev/null"
tgt=$mnt/disk.img
index=$TMP/disk.idx
export VMSYNC_DEBUG_OPS=$TMP/ops

identity() {
	stat -c 'dev %d ino %i size %s mtime %y ctime %z' "$tgt"
}

# Run 1: a committed backup of 3 MiB of data in a 512 MiB image.
src=$TMP/disk.img
"$HOLES" make "$src" 512M 0:1M:1 127M:2M:4
off=$((128 * 1048576 + 4096))	# the sector that changes
cp --sparse=always "$src" "$TMP/first.img"
sync_stats --index "$index" "$src" "$tgt"
[ "$(stat_of index)" = new ] || fail "first run: index $(stat_of index)"
same "$src" "$tgt"
identity > "$TMP/identity.committed"
umount "$mnt"
cp --sparse=always "$img" "$TMP/ext4.committed"
mount -t ext4 "$dev" "$mnt" || fail "remount"

# Run 2, trusted: one sector changes (first window, written and recorded),
# and 100 MiB of new data in the second window do not fit.
"$HOLES" fill "$src" $off:4K:2 300M:100M:3
: > "$TMP/ops"
rc=0
# --force: past the check that refuses, before writing, data that cannot
# fit; this run must run out of space part-way.
"$VMSYNC" --json --no-progress --force --index "$index" "$src" "$tgt" \
	> "$TMP/out" 2> "$TMP/err" || rc=$?
cat "$TMP/err"
[ "$rc" -eq 3 ] || fail "update without space: exit $rc, not 3"
grep -q "^vmsync: $tgt: .*No space left on device$" "$TMP/err" ||
	fail "update without space: no ENOSPC error"
[ "$(jq -r '.images[0].index' "$TMP/out")" = trusted ] ||
	fail "update: index $(jq -r '.images[0].index' "$TMP/out"), not trusted"
[ "$(head -n 1 "$TMP/ops")" = "write $off 4096" ] ||
	fail "update did not write the sector first: $(head -n 3 "$TMP/ops")"

# The target's writes are lost; the index's are not.
umount "$mnt"
dd if="$TMP/ext4.committed" of="$dev" bs=1M conv=fsync status=none ||
	fail "restore the target's filesystem"
mount -t ext4 "$dev" "$mnt" || fail "remount"
identity > "$TMP/identity.restored"
diff "$TMP/identity.committed" "$TMP/identity.restored" ||
	fail "the target's identity is not the one the index recorded"
cmp "$TMP/first.img" "$tgt" ||
	fail "the target does not hold the first run's data"

# Run 3: the source without the data that did not fit.
fallocate -p -o 300M -l 100M "$src"
: > "$TMP/ops"
sync_stats --index "$index" "$src" "$tgt"
[ "$(stat_of index)" = rebuilt ] ||
	fail "after an unfinished run: index $(stat_of index), not rebuilt"
same "$src" "$tgt"
echo "write $off 4096" > "$TMP/expected"
diff "$TMP/expected" "$TMP/ops" || fail "repair did not write exactly that sector"
[ "$(stat_of written_bytes)" -eq 4096 ] ||
	fail "repair wrote $(stat_of written_bytes) bytes"

: > "$TMP/ops"
sync_stats --index "$index" "$src" "$tgt"
[ "$(stat_of index)" = trusted ] || fail "after repair: index $(stat_of index)"
[ ! -s "$TMP/ops" ] || fail "after repair: did $(head -n 3 "$TMP/ops")"
same "$src" "$tgt"
