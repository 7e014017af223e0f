#!/usr/bin/env bash
# Proves: block devices work as source and as target (loop devices): the
# target device ends equal to the source; with --index a second run writes
# and reads nothing on the target; without an index the device is compared
# and nothing is written when equal; a range discarded in the source reads
# as zeros on the target device, and the target's backing file gets a hole
# there (discard reached it).
. "$VMSYNC_TOP/tests/functions.sh"
requires_root
requires losetup qemu-img jq fallocate
[ -w /dev/loop-control ] || skip "needs /dev/loop-control"

"$HOLES" make "$TMP/src.img" 64M 0:4M:1 20M:3M:2 60M:4M:3
truncate -s 64M "$TMP/dst.img"
sdev=$(mkloopdev "$TMP/src.img")
tdev=$(mkloopdev "$TMP/dst.img")

sync_stats --index "$TMP/dev.idx" "$sdev" "$tdev"
cmp "$sdev" "$tdev" || fail "devices differ"
[ "$(stat_of virtual_size)" -eq $((64 << 20)) ] || fail "size of a device source"

export VMSYNC_DEBUG_OPS=$TMP/ops
: > "$VMSYNC_DEBUG_OPS"
sync_stats --index "$TMP/dev.idx" "$sdev" "$tdev"
[ "$(stat_of index)" = trusted ] || fail "device index not trusted"
[ ! -s "$VMSYNC_DEBUG_OPS" ] || fail "second run did: $(head -3 "$VMSYNC_DEBUG_OPS")"
[ "$(stat_of target_read_bytes)" -eq 0 ] || fail "second run read the device"

# Without --index: compare the device, write nothing.
sync_stats "$sdev" "$tdev"
[ "$(stat_of index)" = none ] || fail "index state $(stat_of index)"
[ "$(stat_of target_read_bytes)" -gt 0 ] || fail "did not compare the device"
[ ! -s "$VMSYNC_DEBUG_OPS" ] || fail "rewrote an equal device"

# Discard in the source: the target range reads as zeros and is deallocated.
fallocate -p -o $((21 << 20)) -l $((1 << 20)) "$TMP/src.img"
blockdev --flushbufs "$sdev"
sync_stats --index "$TMP/dev.idx" "$sdev" "$tdev"
cmp "$sdev" "$tdev" || fail "devices differ after a discard"
[ "$(stat_of punched_bytes)" -eq $((1 << 20)) ] || fail "punched $(stat_of punched_bytes)"
blockdev --flushbufs "$tdev"
sync
data_ranges "$TMP/dst.img" | awk -v lo=$((21 << 20)) -v hi=$((22 << 20)) \
	'$1 != "total" && $1 < hi && $1 + $2 > lo { bad = 1 } END { exit bad }' ||
	fail "discarded range still allocated in the target's backing file"

# A change: only that is written.
"$HOLES" fill "$TMP/src.img" $((60 << 20)):4096:9
blockdev --flushbufs "$sdev"
: > "$VMSYNC_DEBUG_OPS"
sync_stats --index "$TMP/dev.idx" "$sdev" "$tdev"
cmp "$sdev" "$tdev" || fail "devices differ after a change"
[ "$(cat "$VMSYNC_DEBUG_OPS")" = "write $((60 << 20)) 4096" ] || fail "ops: $(cat "$VMSYNC_DEBUG_OPS")"

# A device source into a file: equal, with holes where the device reads zeros.
sync_stats "$sdev" "$TMP/file.img"
cmp "$sdev" "$TMP/file.img" || fail "device to file"
[ "$(data_ranges "$TMP/file.img" | awk '/^total/{print $2}')" -le $((11 << 20)) ] ||
	fail "zeros of the device source were written to the file"
