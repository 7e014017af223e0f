#!/usr/bin/env bash
# Proves: every run spot-checks a trusted index against the target.  A
# block device replica (a loop device, index kept with --index) written
# through another node of the same device -- as a mount writes it: the
# node's times and the disk sequence number stay as the index recorded
# them -- in a block the index says is a hole (offset 0) and then in its
# first data block: the next run warns "index not used (spot check failed
# at offset N)" in one line, compares with the device, repairs exactly
# the damage, and the run after it trusts the index and does nothing.
. "$VMSYNC_TOP/tests/functions.sh"
requires_root
requires losetup jq mknod
[ -w /dev/loop-control ] || skip "needs /dev/loop-control"

M=1048576
src=$TMP/disk.img
"$HOLES" make "$src" 64M 1M:1M:1 40M:1M:2
truncate -s 64M "$TMP/dev.img"
dev=$(mkloopdev "$TMP/dev.img")
alias=$TMP/alias
mknod "$alias" b "$(stat -c '%t' "$dev" | xargs printf '%d')" \
	"$(stat -c '%T' "$dev" | xargs printf '%d')"
idx=$TMP/dev.idx
export VMSYNC_DEBUG_OPS=$TMP/ops
vs -q --index="$idx" "$src" "$dev"
cmp -n $((64 * M)) "$src" "$dev" || fail "first sync"
"$HOLES" make "$TMP/junk" 4K 0:4K:99

for off in 0 $((M + 8192)); do
	times=$(stat -c '%Y %Z' "$dev")
	dd if="$TMP/junk" of="$alias" bs=4K seek=$((off / 4096)) conv=notrunc,fsync \
		status=none
	[ "$(stat -c '%Y %Z' "$dev")" = "$times" ] || fail "the node's times changed"
	: > "$TMP/ops"
	sync_stats --index="$idx" "$src" "$dev" 2> "$TMP/err" || fail "run: $(cat "$TMP/err")"
	blk=$((off / 65536 * 65536))
	grep -q "^vmsync: warning: $dev: index not used (spot check failed at offset $blk)" \
		"$TMP/err" || fail "offset $off: no spot check warning: $(cat "$TMP/err")"
	[ "$(wc -l < "$TMP/err")" -eq 1 ] || fail "offset $off: not one line"
	[ "$(stat_of index)" = rebuilt ] || fail "offset $off: index $(stat_of index)"
	cmp -n $((64 * M)) "$src" "$dev" || fail "offset $off: not repaired"
	# A device is zeroed by block, written by sector.
	if [ "$off" -eq 0 ]; then want="punch 0 65536"; else want="write $off 4096"; fi
	echo "$want" | diff - "$TMP/ops" || fail "offset $off: repaired more or less"
	: > "$TMP/ops"
	sync_stats --index="$idx" "$src" "$dev" 2> "$TMP/err"
	[ ! -s "$TMP/err" ] || fail "offset $off: after repair: $(cat "$TMP/err")"
	[ "$(stat_of index)" = trusted ] || fail "offset $off: after repair: $(stat_of index)"
	[ ! -s "$TMP/ops" ] || fail "offset $off: after repair: did $(cat "$TMP/ops")"
done
