#!/usr/bin/env bash
# Proves: a target's index stays trusted across a remount of its btrfs,
# though btrfs numbers its subvolumes' st_dev in the order they are first
# used after each mount: the index identifies the filesystem by its id
# (its UUID and the subvolume), not by st_dev.  After a remount where
# another subvolume is used first, the next run trusts the index and
# writes nothing; a changed target is still caught.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires jq

mnt=$(mkbtrfs 1G)
dev=$(findmnt -n -o SOURCE "$mnt")
btrfs subvolume create "$mnt/a" > /dev/null
btrfs subvolume create "$mnt/b" > /dev/null
src=$TMP/disk.img
"$HOLES" make "$src" 32M 0:1M:1 16M:2M:2
stat -c %d "$mnt/b" > /dev/null
vs -q "$src" "$mnt/a/"
before=$(stat -c %d "$mnt/a/disk.img")
umount "$mnt"
mount "$dev" "$mnt"
stat -c %d "$mnt/b/." "$mnt/b" > /dev/null	# b is numbered first now
after=$(stat -c %d "$mnt/a/disk.img")
[ "$before" != "$after" ] ||
	skip "st_dev did not change across the remount ($before)"
sync_stats "$src" "$mnt/a/"
[ "$(stat_of index)" = trusted ] ||
	fail "after a remount: index $(stat_of index), not trusted"
[ "$(stat_of written_bytes)" -eq 0 ] || fail "after a remount: wrote"
# Identity still means something: a target changed by hand is caught.
printf 'x' | dd of="$mnt/a/disk.img" bs=1 seek=100 conv=notrunc status=none
sync_stats "$src" "$mnt/a/"
[ "$(stat_of index)" = rebuilt ] || fail "changed target: index $(stat_of index)"
same "$src" "$mnt/a/disk.img"
