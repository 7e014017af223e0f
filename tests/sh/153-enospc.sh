#!/usr/bin/env bash
# Proves: running out of space in the middle of a sync ends with exit 3 and
# a one-line "No space left on device" error naming the target; after space
# is freed, the next run does not trust the dirty index, completes, and the
# target equals the source.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires qemu-img jq

mnt=$(mkbtrfs 300M)
# Take most of the space with a file we can delete later.
dd if=/dev/urandom of="$mnt/filler" bs=1M count=150 status=none
sync
src=$TMP/disk.img
"$HOLES" make "$src" 512M 0:60M:1 100M:60M:2 300M:40M:3
must_fail 3 "$mnt/disk.img: .*No space left on device" vs "$src" "$mnt/"
rm "$mnt/filler"
sync
btrfs filesystem sync "$mnt"
sync_stats "$src" "$mnt/"
[ "$(stat_of index)" = rebuilt ] || fail "dirty index trusted after ENOSPC"
same "$src" "$mnt/disk.img"
sync_stats "$src" "$mnt/"
[ "$(stat_of index)" = trusted ] && [ "$(stat_of written_bytes)" -eq 0 ] ||
	fail "run after recovery did more"
