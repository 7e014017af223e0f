#!/usr/bin/env bash
# Proves: one write that covers a hole of the target and then target data
# is compared with the target's old bytes wherever the target holds data.
# The target has a hole in block 0 and data in block 1; the source gains a
# sector of data in block 0 and zeros over one sector of block 1, so the
# two blocks go to the target as one write.  Only the new sector is written
# and the zeroed one is punched: the operation log lists exactly those two
# operations, the target ends equal to the source with data only where the
# source has non-zero sectors, and the next run does nothing.  The index is
# made one from before sector records (version 3), so the old bytes are
# read (and read ahead as one run); with records, 190 covers the same.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires jq

mnt=$(mkbtrfs 2G)
src=$TMP/disk.img
M=1048576
"$HOLES" make "$src" 8M 64K:64K:1 4M:64K:2
tgt=$mnt/disk.img
export VMSYNC_DEBUG_OPS=$TMP/ops VMSYNC_DEBUG_HINTS=$TMP/hints

vs -q "$src" "$tgt"
same "$src" "$tgt"
data_ranges "$tgt" | grep -q '^0 ' && fail "block 0 of the target is not a hole"

# Sector 0 (block 0) gets data; sector 17 (the second of block 1) is
# overwritten with zeros and stays allocated in the source.
"$HOLES" fill "$src" 0:4K:3
dd if=/dev/zero of="$src" bs=4K seek=17 count=1 conv=notrunc status=none

: > "$TMP/ops"
: > "$TMP/hints"
"$VMSYNC_HELPERS/idxforge" downgrade "$mnt/.disk.img.vmsync-index"
sync_stats "$src" "$tgt"
# Blocks 0 and 1 both changed: one run, asked for and written as one.
echo "prefetch 0 131072" > "$TMP/expected"
diff "$TMP/expected" "$TMP/hints" || fail "blocks 0 and 1 are not one run"
cat > "$TMP/expected" <<EOF
write 0 4096
punch 69632 4096
EOF
diff "$TMP/expected" "$TMP/ops" ||
	fail "not exactly the new sector written and the zeroed one punched"
same "$src" "$tgt"
[ "$(stat_of written_bytes)" -eq 4096 ] ||
	fail "written_bytes $(stat_of written_bytes)"
[ "$(stat_of punched_bytes)" -eq 4096 ] ||
	fail "punched_bytes $(stat_of punched_bytes)"
[ "$(stat_of index)" = trusted ] || fail "index $(stat_of index)"
cat > "$TMP/expected" <<EOF
0 4096
65536 4096
73728 57344
$((4 * M)) 65536
total 131072
EOF
diff "$TMP/expected" <(data_ranges "$tgt") || fail "target allocation"

: > "$TMP/ops"
sync_stats "$src" "$tgt"
[ ! -s "$TMP/ops" ] || fail "next run did something: $(cat "$TMP/ops")"
[ "$(stat_of index)" = trusted ] || fail "next run: index $(stat_of index)"
same "$src" "$tgt"
