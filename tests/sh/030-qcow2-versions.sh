#!/usr/bin/env bash
# Proves: qcow2 versions 2 (compat=0.10) and 3, with cluster sizes of 512
# bytes, 4 KiB, 64 KiB and 2 MiB, are synced right in both views: data
# written at offsets and lengths that are not sector nor cluster aligned,
# zero writes (`write -z`) over holes and over data, data in the last,
# partial cluster of a virtual size that is not a multiple of the cluster
# size.  File view: same size, qemu-img check clean, qemu-img compare equal
# to the source, every target byte the source's or a zero.  Guest view:
# qemu-img compare and cmp equal to `qemu-img convert`, and the target's
# data lies inside what qemu-img map calls data.
. "$VMSYNC_TOP/tests/functions.sh"
. "$VMSYNC_TOP/tests/qcow2.sh"
requires_btrfs
requires qemu-img qemu-io jq

mnt=$(mkbtrfs 2G)
size=$((48 * M + 1536))
for compat in 0.10 1.1; do
	for cs in 512 4K 64K 2M; do
		img=$TMP/v$compat-c$cs.qcow2
		qemu-img create -q -f qcow2 -o compat=$compat,cluster_size=$cs \
			"$img" $size
		qemu-io -f qcow2 \
			-c 'write -P 0x11 0 1M' \
			-c 'write -P 0x22 33M 5k' \
			-c 'write -z 40M 2M' \
			-c 'write -P 0x33 1000001 3001' \
			-c 'write -z 1003000 777' \
			-c 'write -P 0x44 20971519 131075' \
			-c 'write -P 0x55 41M 1M' \
			-c 'write -z 41M 64k' \
			-c "write -z $((42 * M + 4095)) 12289" \
			-c "write -P 0x66 $((size - 3000)) 3000" \
			"$img" >/dev/null
		both_views "$img" "$mnt"
	done
done
