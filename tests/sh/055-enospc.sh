#!/usr/bin/env bash
# Proves: running out of space in the middle of a sync is an error, not a
# silent short copy: exit 3 with a one-line "No space left on device" error
# naming the target.  The failed run leaves the index dirty, so once space
# is freed the next run does not trust it ("index":"rebuilt"), compares
# with the target, completes, and the target equals the source; the run
# after that trusts the index and does nothing.  Checked for a first sync
# and for an update of a trusted backup whose new data does not fit.  The
# filesystem is a small ext4 on a loop device (predictable free space).
. "$VMSYNC_TOP/tests/functions.sh"
requires_root
requires qemu-img jq losetup mkfs.ext4 fallocate
[ -w /dev/loop-control ] || skip "needs /dev/loop-control"

M=1048576
img=$TMP/ext4.img
mnt=$TMP/mnt
truncate -s 96M "$img"
mkfs.ext4 -q -F -m 0 "$img" || fail "mkfs.ext4"
dev=$(mkloopdev "$img")
mkdir "$mnt"
mount -t ext4 "$dev" "$mnt" || skip "cannot mount ext4"
cleanup_fn "umount -l '$mnt' 2>/dev/null"
mkdir "$mnt/backup"
tgt=$mnt/backup/disk.img
export VMSYNC_DEBUG_OPS=$TMP/ops

avail() { df -B1 --output=avail "$mnt" | tail -n 1; }
# Leave about $1 MiB free, in a file that can be deleted later.
fill_to() {
	sync -f "$mnt"
	fallocate -l $(($(avail) - $1 * M)) "$mnt/filler" || fail "fallocate"
	sync -f "$mnt"
}

# Random data, 40 MiB of it, in a 1 GiB image: more than the 8 MiB left.
src=$TMP/disk.img
"$HOLES" make "$src" 1G 0:8M:1 300M:16M:2 700M:12M:3 1023M:1M:4
fill_to 8
must_fail 3 "^vmsync: $tgt: .*No space left on device$" vs "$src" "$mnt/backup/"
cmp -s "$src" "$tgt" && fail "first sync: target complete without space?"
rm "$mnt/filler"
sync_stats "$src" "$mnt/backup/"
[ "$(stat_of index)" = rebuilt ] || fail "first sync: dirty index $(stat_of index)"
same "$src" "$tgt"
: > "$TMP/ops"
sync_stats "$src" "$mnt/backup/"
[ "$(stat_of index)" = trusted ] || fail "first sync: index not trusted after recovery"
[ ! -s "$TMP/ops" ] || fail "first sync: recovered target rewritten: $(head -3 "$TMP/ops")"

# A trusted backup; the source gains 20 MiB in holes, and 4 MiB are free.
"$HOLES" fill "$src" 100M:8M:5 500M:12M:6 4M:64K:7
fill_to 4
must_fail 3 "^vmsync: $tgt: .*No space left on device$" vs "$src" "$mnt/backup/"
cmp -s "$src" "$tgt" && fail "update: target complete without space?"
# Still no space: fails again, and must still not trust the index.
must_fail 3 "^vmsync: $tgt: .*No space left on device$" vs "$src" "$mnt/backup/"
rm "$mnt/filler"
: > "$TMP/ops"
sync_stats "$src" "$mnt/backup/"
[ "$(stat_of index)" = rebuilt ] || fail "update: dirty index $(stat_of index)"
[ "$(stat_of target_read_bytes)" -gt 0 ] || fail "update: target not compared"
same "$src" "$tgt"
diff <(data_ranges "$src") <(data_ranges "$tgt") || fail "update: allocation differs"
: > "$TMP/ops"
sync_stats "$src" "$mnt/backup/"
[ "$(stat_of index)" = trusted ] || fail "update: index not trusted after recovery"
[ ! -s "$TMP/ops" ] || fail "update: recovered target rewritten: $(head -3 "$TMP/ops")"
