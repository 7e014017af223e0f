#!/usr/bin/env bash
# Proves: persistent dirty bitmaps survive the file view.  The bitmap
# directory, the bitmap tables and the clusters they name are live, so the
# target carries the same bitmaps with the same bits: a copy of source and
# target made by `qemu-img convert --bitmaps` is byte-identical, the target
# passes qemu-img check and its guest disk equals the source's.
. "$VMSYNC_TOP/tests/functions.sh"
requires qemu-img qemu-io jq

img=$TMP/bm.qcow2
out=$TMP/out
mkdir "$out"
qemu-img create -q -f qcow2 "$img" 64M
qemu-img bitmap --add "$img" bm0
qemu-io -f qcow2 -c 'write -P 1 0 8M' -c 'write -P 2 32M 1M' "$img" >/dev/null
qemu-img bitmap --add "$img" bm1
qemu-io -f qcow2 -c 'write -P 3 40M 1M' -c 'discard 1M 2M' "$img" >/dev/null

vs -q "$img" "$out/"
qemu-img check -q -f qcow2 "$out/bm.qcow2" || fail "target fails qemu-img check"
qemu-img compare -q -f qcow2 -F qcow2 "$img" "$out/bm.qcow2" ||
	fail "guest disks differ"
names=$(qemu-img info --output=json "$out/bm.qcow2" |
	jq -r '[.["format-specific"].data.bitmaps[].name] | join(",")')
[ "$names" = "bm0,bm1" ] || fail "bitmaps on the target: '$names'"
qemu-img convert -f qcow2 -O qcow2 --bitmaps "$img" "$TMP/a.qcow2"
qemu-img convert -f qcow2 -O qcow2 --bitmaps "$out/bm.qcow2" "$TMP/b.qcow2"
cmp "$TMP/a.qcow2" "$TMP/b.qcow2" || fail "bitmap contents differ"
