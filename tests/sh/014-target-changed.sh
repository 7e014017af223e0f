#!/usr/bin/env bash
# Proves: vmsync does not trust its index when the target changed behind its
# back.  After a dd into the target (over data, and into a hole), after a
# touch, after the index was deleted or damaged, the next run reports the
# index "rebuilt", compares with the target, and repairs exactly what
# differs: the overwritten sector is written, the stray data in a hole is
# punched, and nothing else.  A target made by cp --sparse=always, without
# an index, is adopted the same way: read, only the differing sector written.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires jq

mnt=$(mkbtrfs 2G)
src=$TMP/disk.img
M=1048576
"$HOLES" make "$src" 128M 0:4M:1 100M:2M:2 127M:1M:3
tgt=$mnt/disk.img
idx=$mnt/.disk.img.vmsync-index
export VMSYNC_DEBUG_OPS=$TMP/ops

vs -q "$src" "$tgt"
same "$src" "$tgt"

nothing_left() {	# the next run is trusted and does nothing
	: > "$TMP/ops"
	sync_stats "$src" "$tgt"
	[ "$(stat_of index)" = trusted ] || fail "$1: index not trusted after repair"
	[ ! -s "$TMP/ops" ] || fail "$1: run after repair did: $(cat "$TMP/ops")"
	same "$src" "$tgt"
}

# dd over data (one sector at 1 MiB) and into a hole (one sector at 60 MiB).
"$HOLES" make "$TMP/junk" 4K 0:4K:99
dd if="$TMP/junk" of="$tgt" bs=4K seek=256 conv=notrunc status=none
dd if="$TMP/junk" of="$tgt" bs=4K seek=$((60 * 256)) conv=notrunc status=none
! cmp -s "$src" "$tgt" || fail "the target did not change"
: > "$TMP/ops"
sync_stats "$src" "$tgt"
same "$src" "$tgt"
[ "$(stat_of index)" = rebuilt ] || fail "dd: index $(stat_of index), not rebuilt"
[ "$(stat_of target_read_bytes)" -gt 0 ] || fail "dd: target not read"
cat > "$TMP/expected" <<EOF
write $M 4096
punch $((60 * M)) 4096
EOF
diff "$TMP/expected" "$TMP/ops" || fail "dd: repaired more or less than the damage"
diff <(data_ranges "$src") <(data_ranges "$tgt") || fail "dd: allocation differs"
nothing_left dd

# Only the mtime changed: compared again, nothing to write.
touch -m -d '2001-01-01' "$tgt"
: > "$TMP/ops"
sync_stats "$src" "$tgt"
[ "$(stat_of index)" = rebuilt ] || fail "touch: index $(stat_of index)"
[ ! -s "$TMP/ops" ] || fail "touch: wrote $(cat "$TMP/ops")"
[ "$(stat -c %Y "$tgt")" -eq "$(stat -c %Y "$src")" ] || fail "touch: mtime not restored"
nothing_left touch

# The index deleted.
rm "$idx"
: > "$TMP/ops"
sync_stats "$src" "$tgt"
[ "$(stat_of index)" = rebuilt ] || fail "rm index: index $(stat_of index)"
[ "$(stat_of target_read_bytes)" -gt 0 ] || fail "rm index: target not read"
[ ! -s "$TMP/ops" ] || fail "rm index: wrote $(cat "$TMP/ops")"
[ -f "$idx" ] || fail "rm index: no new index"
nothing_left "rm index"

# The index damaged: a byte of its header, then cut short.
printf 'X' | dd of="$idx" bs=1 seek=30 conv=notrunc status=none
sync_stats "$src" "$tgt"
[ "$(stat_of index)" = rebuilt ] || fail "bad header: index $(stat_of index)"
nothing_left "bad header"
truncate -s 5000 "$idx"
sync_stats "$src" "$tgt"
[ "$(stat_of index)" = rebuilt ] || fail "short index: index $(stat_of index)"
nothing_left "short index"

# A copy made with cp, no index; the source then differs in 3 bytes.
tgt=$mnt/copy.img
cp --sparse=always "$src" "$tgt"
[ ! -e "$mnt/.copy.img.vmsync-index" ] || fail "index before the first run"
printf 'abc' | dd of="$src" bs=1 seek=$((100 * M + 12345)) conv=notrunc status=none
: > "$TMP/ops"
sync_stats "$src" "$tgt"
same "$src" "$tgt"
[ "$(stat_of target_read_bytes)" -gt 0 ] || fail "cp: target not read"
[ "$(stat_of written_bytes)" -eq 4096 ] || fail "cp: wrote $(stat_of written_bytes)"
echo "write $((100 * M + 12288)) 4096" | diff - "$TMP/ops" || fail "cp: wrong operations"
diff <(data_ranges "$src") <(data_ranges "$tgt") || fail "cp: allocation differs"
nothing_left cp
