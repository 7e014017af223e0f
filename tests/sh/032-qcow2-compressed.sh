#!/usr/bin/env bash
# Proves: compressed clusters are read right in both views: images made by
# `qemu-img convert -c` with deflate (zlib) and zstd compression, at cluster
# sizes 512 bytes, 64 KiB and 2 MiB (the 1- and 13-bit sector count fields,
# compressed clusters packed back to back sharing sectors, incompressible
# clusters stored plainly, the last window running past the end of the
# file), and clusters compressed in place with `qemu-io write -c` into a
# fresh image and into an overlay of a compressed image.  Both views: the
# checks of tests/qcow2.sh (qemu-img check, qemu-img compare, cmp against
# qemu-img convert, allocation inside qemu-img map's data).
. "$VMSYNC_TOP/tests/functions.sh"
. "$VMSYNC_TOP/tests/qcow2.sh"
requires_btrfs
requires qemu-img qemu-io jq

mnt=$(mkbtrfs 2G)
src=$TMP/src.raw
# Text, zeros, random bytes, zeros, text again; an odd tail: 9 MiB + 1536.
{
	{ yes vmsync || :; } | head -c $((M + 1000))
	head -c $((M - 1000)) /dev/zero
	head -c $M /dev/urandom
	head -c $((5 * M)) /dev/zero
	{ seq 1 200000 || :; } | head -c $((M + 1536))
} > "$src"

compressed() {	# the image has compressed clusters
	local n
	n=$(qemu-img check --output=json -f qcow2 "$1" |
		jq -r '.["compressed-clusters"] // 0')
	[ "$n" -gt 0 ] || fail "$1: no compressed clusters"
}

for type in zlib zstd; do
	for cs in 512 64K 2M; do
		img=$TMP/c-$type-$cs.qcow2
		qemu-img convert -c -f raw -O qcow2 \
			-o compression_type=$type,cluster_size=$cs "$src" "$img"
		compressed "$img"
		both_views "$img" "$mnt"
		cmp "$src" "$mnt/c-$type-$cs.raw" || fail "$img: guest disk != source"
	done
done
t=$(qemu-img info --output=json -f qcow2 "$TMP/c-zstd-64K.qcow2" |
	jq -r '.["format-specific"].data["compression-type"]')
[ "$t" = zstd ] || fail "zstd image has compression type '$t'"

# In place: whole clusters, compressed, into a fresh image ...
img=$TMP/wc.qcow2
qemu-img create -q -f qcow2 "$img" 16M
qemu-io -f qcow2 -c 'write -c -P 5 0 64k' -c 'write -c -P 6 128k 64k' \
	-c 'write -P 7 1M 64k' -c 'write -c -P 8 15M 1M' "$img" >/dev/null
compressed "$img"
both_views "$img" "$mnt"

# ... and into an overlay of a compressed zstd image (guest view reads the
# chain; the file view syncs each layer).
base=$TMP/c-zstd-64K.qcow2
ov=$TMP/ov.qcow2
qemu-img create -q -f qcow2 -b "$(basename "$base")" -F qcow2 "$ov"
qemu-io -f qcow2 -c 'write -c -P 9 64k 64k' -c 'write -c -P 10 3M 128k' \
	-c 'write -z 8M 64k' "$ov" >/dev/null
compressed "$ov"
both_views "$ov" "$mnt"
