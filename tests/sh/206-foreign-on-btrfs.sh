#!/usr/bin/env bash
# Proves: a vmdk on btrfs is read through a point-in-time clone like any
# source there: the target equals the guest disk (qemu-img compare); -v
# says that change detection from extents does not apply to the format, so
# the next run reads the allocated data, compares it with the index and
# writes only what changed; no clone and no base is kept beside the image
# (an empty state directory stays, as for any source cloned there).
. "$VMSYNC_TOP/tests/functions.sh"
requires qemu-img qemu-io qemu-storage-daemon
requires_btrfs

M=1048576
mnt=$(mkbtrfs 1G)
btrfs subvolume create "$mnt/vol" > /dev/null
img=$mnt/vol/vm.vmdk
qemu-img create -q -f vmdk "$img" 64M
qemu-io -c 'write -P 3 1M 4M' -c 'write -P 5 40M 1M' "$img" > /dev/null
mkdir "$TMP/t"

vs -v -O raw --json "$img" "$TMP/t/" > "$TMP/out.json" 2> "$TMP/log" ||
	fail "first run: exit $?: $(cat "$TMP/log")"
qemu-img compare -q -f vmdk -F raw "$img" "$TMP/t/vm.raw" ||
	fail "first run: target differs"

qemu-io -c 'write -P 9 2M 64K' "$img" > /dev/null
vs -v -O raw --json "$img" "$TMP/t/" > "$TMP/out.json" 2> "$TMP/log" ||
	fail "second run: exit $?: $(cat "$TMP/log")"
grep -q "change detection from extents does not apply to vmdk images" "$TMP/log" ||
	fail "-v does not say change detection does not apply: $(cat "$TMP/log")"
qemu-img compare -q -f vmdk -F raw "$img" "$TMP/t/vm.raw" ||
	fail "second run: target differs"
written=$(jq -r '.images[0].written_bytes' "$TMP/out.json")
[ "$written" -eq 65536 ] || fail "second run wrote $written bytes, want 65536"

# No clone and no base kept beside the image (a base would only pin the
# image's old extents); the state directory the clone was made in stays.
left=$(find "$mnt/vol" -mindepth 1 ! -name vm.vmdk ! -path "$mnt/vol/.vmsync" |
	tr '\n' ' ')
[ -z "$left" ] || fail "left beside the image: $left"
exit 0
