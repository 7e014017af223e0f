#!/usr/bin/env bash
# Proves: the first sync of a sparse raw image into a directory on btrfs
# creates DEST/basename, equal in content, with holes where the source has
# holes (target allocation equals source allocation), and an index beside it.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires qemu-img jq

mnt=$(mkbtrfs 2G)
src=$TMP/disk.img
"$HOLES" make "$src" 1G 0:1M:1 100M:3M:2 349175813:77K:3 1000M:8M:4 1073737728:4K:5
mkdir "$mnt/backup"

sync_stats "$src" "$mnt/backup/"
tgt=$mnt/backup/disk.img
same "$src" "$tgt"
[ -f "$mnt/backup/.disk.img.vmsync-index" ] || fail "no index beside the target"
[ "$(stat_of virtual_size)" -eq $((1 << 30)) ] || fail "virtual_size"
[ "$(stat_of data_bytes)" -eq "$(data_ranges "$src" | awk '/^total/{print $2}')" ] ||
	fail "data_bytes is not the source's allocation"
[ "$(stat_of read_bytes)" -lt $((20 << 20)) ] || fail "read holes of the source"
[ "$(stat_of target_read_bytes)" -eq 0 ] || fail "read a new target"

# Allocation: the target holds data exactly where the source does.
diff <(data_ranges "$src") <(data_ranges "$tgt") || fail "allocation differs"
