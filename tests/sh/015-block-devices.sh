#!/usr/bin/env bash
# Proves: block devices work as source and target (loop devices on sparse
# files).  The target device, larger than the source, ends equal over the
# source's size and untouched past it.  Without --index the target device
# is read and compared on every run and an equal one gets no writes; with
# --index FILE a second run trusts the index, reads nothing of the target
# and writes nothing.  A hole punched in the source's backing file makes the
# range read as zeros on the target (one punch), a write into the target
# device by someone else is detected and repaired, and old data on the
# target device where the source has zeros is zeroed.
. "$VMSYNC_TOP/tests/functions.sh"
requires_root
requires jq losetup blockdev fallocate
[ -w /dev/loop-control ] || skip "needs /dev/loop-control"

M=1048576
"$HOLES" make "$TMP/src.raw" 64M 0:4M:1 20M:1M:2 63M:1M:3
# Old data on the target: where the source has a hole, and past its end.
"$HOLES" make "$TMP/tgt.raw" 80M 10M:1M:8 70M:1M:9
cp "$TMP/tgt.raw" "$TMP/tgt.orig"
sdev=$(mkloopdev "$TMP/src.raw")
tdev=$(mkloopdev "$TMP/tgt.raw")
[ "$(blockdev --getsize64 "$sdev")" -eq $((64 * M)) ] || skip "odd loop device size"
export VMSYNC_DEBUG_OPS=$TMP/ops

# cmp of the source device with the first 64 MiB of the target device, and
# the target past that is what it was.
dev_same() {
	blockdev --flushbufs "$tdev"
	cmp -n $((64 * M)) "$sdev" "$tdev" || fail "$1: devices differ"
	cmp -i $((64 * M)) "$TMP/tgt.orig" "$tdev" ||
		fail "$1: target changed past the source's end"
}

# First run, no index: the source's data is written, the old data in the
# source's hole zeroed, nothing else.
sync_stats "$sdev" "$tdev"
dev_same "first run"
[ "$(stat_of index)" = none ] || fail "first run: index $(stat_of index)"
[ "$(stat_of virtual_size)" -eq $((64 * M)) ] || fail "virtual_size"
[ "$(stat_of written_bytes)" -eq $((6 * M)) ] || fail "first run wrote $(stat_of written_bytes)"
grep punch "$TMP/ops" | diff - <(echo "punch $((10 * M)) $M") ||
	fail "first run: the old data in the source's hole was not zeroed once"

# Without an index, every run compares the device, and writes nothing.
: > "$TMP/ops"
sync_stats "$sdev" "$tdev"
[ "$(stat_of target_read_bytes)" -gt 0 ] || fail "no index: the target was not compared"
[ "$(stat_of written_bytes)" -eq 0 ] || fail "no index: wrote"
[ ! -s "$TMP/ops" ] || fail "no index: did $(cat "$TMP/ops")"
dev_same "no index"

# With --index: built once, then trusted.
idx=$TMP/dev.index
sync_stats --index "$idx" "$sdev" "$tdev"
[ "$(stat_of index)" = rebuilt ] || fail "--index first: index $(stat_of index)"
[ ! -s "$TMP/ops" ] || fail "--index first: did $(cat "$TMP/ops")"
[ -s "$idx" ] || fail "no index file written"
sync_stats --index "$idx" "$sdev" "$tdev"
[ "$(stat_of index)" = trusted ] || fail "--index second: index $(stat_of index)"
[ "$(stat_of target_read_bytes)" -eq 0 ] || fail "--index second: read the target"
[ "$(stat_of written_bytes)" -eq 0 ] || fail "--index second: wrote"
[ ! -s "$TMP/ops" ] || fail "--index second: did $(cat "$TMP/ops")"
dev_same "--index"

# A hole punched in the source's backing file.
fallocate -p -o $((20 * M)) -l $M "$TMP/src.raw"
blockdev --flushbufs "$sdev"
cmp -s -n $M -i $((20 * M)):0 "$sdev" /dev/zero || fail "the source device does not read zeros"
: > "$TMP/ops"
sync_stats --index "$idx" "$sdev" "$tdev"
[ "$(stat_of index)" = trusted ] || fail "punch: index $(stat_of index)"
echo "punch $((20 * M)) $M" | diff - "$TMP/ops" || fail "punch: wrong operations"
dev_same "punch"
cmp -n $M -i $((20 * M)):0 "$tdev" /dev/zero || fail "punched range does not read as zeros"
# The loop driver turns the discard into a hole in the backing file.
data_ranges "$TMP/tgt.raw" | awk -v lo=$((20 * M)) -v hi=$((21 * M)) \
	'$1 != "total" && $1 < hi && $1 + $2 > lo {bad = 1} END {exit bad}' ||
	fail "the target's backing file still holds data in the punched range"
: > "$TMP/ops"
sync_stats --index "$idx" "$sdev" "$tdev"
[ ! -s "$TMP/ops" ] || fail "after punch: did $(cat "$TMP/ops")"

# Someone writes into the target device: the index is not trusted again.
"$HOLES" make "$TMP/junk" 4K 0:4K:99
dd if="$TMP/junk" of="$tdev" bs=4K seek=$((2 * 256)) conv=notrunc status=none
: > "$TMP/ops"
sync_stats --index "$idx" "$sdev" "$tdev"
[ "$(stat_of index)" = rebuilt ] || fail "dd: index $(stat_of index), not rebuilt"
echo "write $((2 * M)) 4096" | diff - "$TMP/ops" || fail "dd: wrong operations"
dev_same "dd"

