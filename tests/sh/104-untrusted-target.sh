#!/usr/bin/env bash
# Proves: the index is not trusted when it may be stale, and the target
# still ends equal to the source:
#  - a target changed behind vmsync's back (dd into it) is detected;
#  - a target whose index was deleted is compared, not rewritten;
#  - a target made by cp (no index) is read and hashed once, and only the
#    sectors that differ are written;
#  - --checksum repairs a corrupted block and writes only that sector.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires qemu-img jq

mnt=$(mkbtrfs 2G)
src=$TMP/disk.img
tgt=$mnt/disk.img
idx=$mnt/.disk.img.vmsync-index
"$HOLES" make "$src" 256M 0:4M:1 100M:4M:2
vs -q "$src" "$tgt"
same "$src" "$tgt"

# Behind our back: one sector of the target overwritten.
"$HOLES" fill "$tgt" $((100 * 1048576 + 8192)):100:9
sync_stats -v "$src" "$tgt" 2> "$TMP/err"
grep -q 'the target changed since the last run' "$TMP/err" || fail "no reason given: $(cat "$TMP/err")"
[ "$(stat_of index)" = rebuilt ] || fail "changed target trusted"
[ "$(stat_of written_bytes)" -eq 4096 ] || fail "wrote $(stat_of written_bytes), want one sector"
same "$src" "$tgt"

# Index deleted: compare (read the target), write nothing.
rm "$idx"
sync_stats "$src" "$tgt"
[ "$(stat_of index)" = rebuilt ] || fail "index state"
[ "$(stat_of written_bytes)" -eq 0 ] || fail "rewrote an equal target"
[ "$(stat_of target_read_bytes)" -gt 0 ] || fail "did not read the target"
[ -f "$idx" ] || fail "index not recreated"

# A target made by cp, one range differing from the source.
cp --sparse=always "$src" "$mnt/copy.img"
"$HOLES" fill "$src" $((2 * 1048576)):10000:7
export VMSYNC_DEBUG_OPS=$TMP/ops
: > "$VMSYNC_DEBUG_OPS"
sync_stats "$src" "$mnt/copy.img"
same "$src" "$mnt/copy.img"
[ "$(stat_of written_bytes)" -eq 12288 ] || fail "wrote $(stat_of written_bytes) into a cp'd target"
[ "$(stat_of target_read_bytes)" -gt 0 ] || fail "did not read the cp'd target"
: > "$VMSYNC_DEBUG_OPS"
sync_stats "$src" "$mnt/copy.img"
[ "$(stat_of index)" = trusted ] || fail "index of the cp'd target not trusted"
[ ! -s "$VMSYNC_DEBUG_OPS" ] || fail "second run did something"
[ "$(stat_of target_read_bytes)" -eq 0 ] || fail "second run read the target"

# --checksum: corrupt a block, then make the index claim the old identity by
# restoring both from a reflink copy taken before ... not possible (ctime);
# instead, show --checksum repairs and that a plain run after it is trusted.
vs -q "$src" "$tgt"
"$HOLES" fill "$tgt" $((3 * 1048576 + 4096)):1:5
sync_stats -c "$src" "$tgt"
same "$src" "$tgt"
[ "$(stat_of written_bytes)" -eq 4096 ] || fail "--checksum wrote $(stat_of written_bytes)"
[ "$(stat_of index)" = rebuilt ] || fail "--checksum used the index"
sync_stats -c "$src" "$tgt"
[ "$(stat_of written_bytes)" -eq 0 ] || fail "--checksum rewrote an equal target"
[ "$(stat_of target_read_bytes)" -gt 0 ] || fail "--checksum did not read the target"
sync_stats "$src" "$tgt"
[ "$(stat_of index)" = trusted ] || fail "index not trusted after --checksum"
