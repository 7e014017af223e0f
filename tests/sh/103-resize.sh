#!/usr/bin/env bash
# Proves: the target's size follows the source as it grows and shrinks
# (sizes off block and sector boundaries, new data in the grown part), the
# content stays equal, and the index stays trusted: a run after each resize
# leaves nothing more to do.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires qemu-img jq

mnt=$(mkbtrfs 2G)
src=$TMP/disk.img
tgt=$mnt/disk.img
"$HOLES" make "$src" $((100 * 1048576 + 100)) 0:1M:1 $((100 * 1048576 - 300000)):300100:2
vs -q "$src" "$tgt"
same "$src" "$tgt"

check() {
	sync_stats "$src" "$tgt"
	same "$src" "$tgt"
	[ "$(stat -c %s "$tgt")" -eq "$(stat -c %s "$src")" ] || fail "size"
	export VMSYNC_DEBUG_OPS=$TMP/ops
	: > "$VMSYNC_DEBUG_OPS"
	sync_stats "$src" "$tgt"
	unset VMSYNC_DEBUG_OPS
	[ "$(stat_of index)" = trusted ] || fail "index not trusted after resize"
	[ ! -s "$TMP/ops" ] || fail "run after resize did: $(cat "$TMP/ops")"
}

# Grow with data in the new part, to a size off every boundary.
truncate -s $((300 * 1048576 + 7)) "$src"
"$HOLES" fill "$src" $((250 * 1048576)):2M:3 $((300 * 1048576 - 5000)):5007:4
check
# Shrink into the middle of a data range and of a block.
truncate -s $((150 * 1048576 + 4095)) "$src"
check
# Shrink below a block, then grow without new data (a hole at the end).
truncate -s 5000 "$src"
check
truncate -s 64M "$src"
check
[ "$(data_ranges "$tgt" | awk '/^total/{print $2}')" -le 8192 ] ||
	fail "grown part is not a hole on the target"
# Empty source.
truncate -s 0 "$src"
check
