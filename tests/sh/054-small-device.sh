#!/usr/bin/env bash
# Proves: a block device target smaller than the source -- by many MiB or
# by one sector -- is refused with exit 3 and a one-line error naming the
# device, before anything is written: the device's content is unchanged,
# with or without --index, in a dry run too, and an existing --index of
# that device is unchanged and still trusted afterwards.  A source exactly
# the device's size is fine.
. "$VMSYNC_TOP/tests/functions.sh"
requires_root
requires jq losetup blockdev
[ -w /dev/loop-control ] || skip "needs /dev/loop-control"

M=1048576
"$HOLES" make "$TMP/dev.raw" 32M 0:32M:9	# every byte is data
dev=$(mkloopdev "$TMP/dev.raw")
[ "$(blockdev --getsize64 "$dev")" -eq $((32 * M)) ] || skip "odd loop device size"
"$HOLES" make "$TMP/big.img" 64M 0:1M:1 40M:1M:2
"$HOLES" make "$TMP/sector.img" $((32 * M + 512)) 0:4K:3 $((32 * M)):512:4
"$HOLES" make "$TMP/fits.img" 32M 0:1M:5 31M:1M:6
export VMSYNC_DEBUG_OPS=$TMP/ops
: > "$TMP/ops"

dsum() {
	blockdev --flushbufs "$dev"
	md5sum < "$dev"
}
before=$(dsum)

refused() {	# refused SRC [OPTIONS]
	local s=$1 size
	shift
	size=$(stat -c %s "$s")
	must_fail 3 "^vmsync: $dev: target device is smaller than the source \\($((32 * M)) < $size bytes\\)" \
		vs "$@" "$s" "$dev"
	[ "$(dsum)" = "$before" ] || fail "device written: $* $s"
	[ ! -s "$TMP/ops" ] || fail "operations on a refused device: $(cat "$TMP/ops")"
}

refused "$TMP/big.img"
refused "$TMP/sector.img"
refused "$TMP/big.img" -c
refused "$TMP/big.img" -n
refused "$TMP/big.img" --index="$TMP/new-index"
rm -f "$TMP/new-index"	# whether or not it was created, it holds nothing

# An existing index of the device: synced from a source that fits, then a
# larger source is refused, and the index still describes the device.
sync_stats --index="$TMP/index" "$TMP/fits.img" "$dev"
[ "$(stat_of status)" -eq 0 ] || fail "a source of the device's size failed"
blockdev --flushbufs "$dev"
cmp "$TMP/fits.img" "$dev" || fail "device differs from a source that fits"
before=$(dsum)
isum=$(md5sum < "$TMP/index")
: > "$TMP/ops"
refused "$TMP/big.img" --index="$TMP/index"
refused "$TMP/sector.img" --index="$TMP/index"
[ "$(md5sum < "$TMP/index")" = "$isum" ] || fail "index changed by a refused run"
sync_stats --index="$TMP/index" "$TMP/fits.img" "$dev"
[ "$(stat_of index)" = trusted ] || fail "index not trusted after refused runs"
[ "$(stat_of target_read_bytes)" -eq 0 ] || fail "read the device with a trusted index"
[ ! -s "$TMP/ops" ] || fail "wrote to an equal device: $(cat "$TMP/ops")"
