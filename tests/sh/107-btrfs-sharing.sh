#!/usr/bin/env bash
# Proves: writes are in place, so a read-only btrfs snapshot of the backup
# subvolume keeps sharing everything that did not change: after a 1 MiB
# change in a 64 MiB image, the live target holds about 1 MiB of data that
# the snapshot does not share.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires qemu-img jq

mnt=$(mkbtrfs 2G)
btrfs -q subvolume create "$mnt/backup"
src=$TMP/disk.img
"$HOLES" make "$src" 512M 0:32M:1 256M:32M:2
vs -q "$src" "$mnt/backup/"
btrfs -q subvolume snapshot -r "$mnt/backup" "$mnt/snap1"

"$HOLES" fill "$src" $((10 << 20)):512K:3 $((270 << 20)):512K:4
sync_stats "$src" "$mnt/backup/"
same "$src" "$mnt/backup/disk.img"
[ "$(stat_of written_bytes)" -eq $((1 << 20)) ] || fail "wrote $(stat_of written_bytes)"
sync
btrfs filesystem sync "$mnt"
excl=$(btrfs filesystem du --raw -s "$mnt/backup/disk.img" | awk 'NR == 2 {print $2}')
shared=$(btrfs filesystem du --raw -s "$mnt/backup/disk.img" | awk 'NR == 2 {print $3}')
echo "exclusive $excl, shared $shared"
[ "$excl" -le $((1 << 20)) ] || fail "live target has $excl exclusive bytes for a 1 MiB change"
[ "$excl" -ge $((1 << 20)) ] || fail "change not in the target?"
[ "$shared" -ge $((63 << 20)) ] || fail "only $shared bytes still shared with the snapshot"
# The index costs a few pages, not a rewrite.
iexcl=$(btrfs filesystem du --raw -s "$mnt/backup/.disk.img.vmsync-index" | awk 'NR == 2 {print $2}')
[ "$iexcl" -le $((64 << 10)) ] || fail "index rewrote $iexcl bytes"
