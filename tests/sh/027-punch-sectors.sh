#!/usr/bin/env bash
# Proves: sectors punched inside a block of the source after a sync become
# a hole of the same sectors on the target: one punch of exactly that
# range, nothing written, the index still trusted, the target's allocation
# equal to the source's; the run after it does nothing.  Needs a source
# filesystem that punches 4 KiB holes.  (Whole blocks: 012-punch.sh.)
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires jq fallocate

mnt=$(mkbtrfs 1G)
src=$TMP/disk.img
M=1048576
"$HOLES" make "$src" 128M 0:8M:1 100M:4M:2
tgt=$mnt/disk.img
export VMSYNC_DEBUG_OPS=$TMP/ops

vs -q "$src" "$tgt"
same "$src" "$tgt"

# 8 KiB at 100 MiB + 68 KiB: sectors 1 and 2 of the block at 100 MiB + 64 KiB.
fallocate -p -o $((100 * M + 69632)) -l 8192 "$src"
data_ranges "$src" | grep -q "^$((100 * M + 77824)) " ||
	skip "the source's filesystem does not punch 4 KiB holes"

: > "$TMP/ops"
sync_stats "$src" "$tgt"
same "$src" "$tgt"
diff <(data_ranges "$src") <(data_ranges "$tgt") ||
	fail "allocation differs after punching sectors of the source"
echo "punch $((100 * M + 69632)) 8192" | diff - "$TMP/ops" ||
	fail "not exactly one punch of the sectors"
[ "$(stat_of punched_bytes)" -eq 8192 ] || fail "punched_bytes"
[ "$(stat_of written_bytes)" -eq 0 ] || fail "wrote while punching"
[ "$(stat_of index)" = trusted ] || fail "index not trusted"

: > "$TMP/ops"
sync_stats "$src" "$tgt"
[ ! -s "$TMP/ops" ] || fail "the next run did something: $(cat "$TMP/ops")"
[ "$(stat_of punched_bytes)" -eq 0 ] || fail "the next run punched"
same "$src" "$tgt"
