#!/usr/bin/env bash
# Proves: with a block-device target and --index, a source that grows is
# synced fully into the part of the device it now covers.  The device is not
# cut to size like a file, so that part still holds whatever was there
# before (old data of a larger source, or anything else); where the grown
# source reads as zeros the index has no entries to trust, and the target
# must be compared and zeroed there (and a dry run must say so).  Both ways
# in: a source that grows past anything synced before, and one that shrinks
# and grows back.
. "$VMSYNC_TOP/tests/functions.sh"
requires_root
requires jq losetup blockdev
[ -w /dev/loop-control ] || skip "needs /dev/loop-control"

M=1048576
"$HOLES" make "$TMP/src.raw" 64M 0:4M:1 40M:4M:2
"$HOLES" make "$TMP/tgt.raw" 80M 70M:1M:9	# old data past the source's end
sdev=$(mkloopdev "$TMP/src.raw")
tdev=$(mkloopdev "$TMP/tgt.raw")
idx=$TMP/dev.index
export VMSYNC_DEBUG_OPS=$TMP/ops

resize_src() {	# resize_src SIZE
	truncate -s "$1" "$TMP/src.raw"
	losetup -c "$sdev"
	blockdev --flushbufs "$sdev"
	[ "$(blockdev --getsize64 "$sdev")" -eq "$1" ] || skip "loop device did not resize"
}
check() {	# check WHAT SIZE
	blockdev --flushbufs "$tdev"
	cmp -n "$2" "$sdev" "$tdev" || fail "$1: target differs from the source"
}

sync_stats --index "$idx" "$sdev" "$tdev"
check "first run" $((64 * M))
sync_stats --index "$idx" "$sdev" "$tdev"
[ "$(stat_of index)" = trusted ] || fail "second run: index $(stat_of index)"

# Grows over the old data at 70 MiB; the new part is zeros.
resize_src $((72 * M))
: > "$TMP/ops"
sync_stats --index "$idx" "$sdev" "$tdev"
echo "punch $((70 * M)) $M" | diff - "$TMP/ops" || fail "grow: old data at 70M not zeroed once"
[ "$(stat_of virtual_size)" -eq $((72 * M)) ] || fail "grow: virtual_size"
check "grow to 72M" $((72 * M))
: > "$TMP/ops"
sync_stats --index "$idx" "$sdev" "$tdev"
[ ! -s "$TMP/ops" ] || fail "grow: the next run did $(cat "$TMP/ops")"

# Shrinks: the device keeps the source's old data at 40..44 MiB past the
# new end.  Grows back with zeros there.
resize_src $((32 * M))
sync_stats --index "$idx" "$sdev" "$tdev"
check "shrink to 32M" $((32 * M))
# A dry run first: it must list what the real run then does.
resize_src $((48 * M))
VMSYNC_DEBUG_OPS=$TMP/dry.ops vs -n -q --index "$idx" "$sdev" "$tdev"
: > "$TMP/ops"
sync_stats --index "$idx" "$sdev" "$tdev"
check "grow back to 48M" $((48 * M))
echo "punch $((40 * M)) $((4 * M))" | diff - "$TMP/ops" ||
	fail "grow back: old data at 40M not zeroed once"
diff "$TMP/ops" "$TMP/dry.ops" || fail "grow back: the dry run did not list what the run did"
