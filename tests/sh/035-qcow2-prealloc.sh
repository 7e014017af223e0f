#!/usr/bin/env bash
# Proves: preallocated images (preallocation=metadata, falloc and full, and
# extended_l2=on with preallocation=metadata, where every cluster has a host
# offset but no allocated subcluster) are synced in both views with only
# what the guest wrote: some data, a zero write, a discard.  Both views pass
# the checks of tests/qcow2.sh; the guest-view target holds exactly the
# bytes written (preallocated clusters read as zeros and stay holes), the
# file-view target those plus a little metadata -- although the falloc and
# full sources hold the whole virtual size.  With extended L2, metadata
# preallocation over a backing file reads the backing file through the
# preallocated but unallocated subclusters.
. "$VMSYNC_TOP/tests/functions.sh"
. "$VMSYNC_TOP/tests/qcow2.sh"
requires_btrfs
requires qemu-img qemu-io jq

mnt=$(mkbtrfs 2G)
written=$((M + 8192))

for p in metadata falloc full el2; do
	o=preallocation=$p
	[ $p = el2 ] && o=extended_l2=on,preallocation=metadata
	img=$TMP/p-$p.qcow2
	qemu-img create -q -f qcow2 -o $o "$img" 64M
	qemu-io -f qcow2 -c 'write -P 1 1M 1M' -c 'write -P 2 10489856 8192' \
		-c 'write -z 20M 1M' -c 'write -P 3 30M 64k' \
		-c 'discard 30M 64k' "$img" >/dev/null
	case $p in
	falloc|full)
		[ "$(alloc "$img")" -ge $((64 * M)) ] ||
			fail "$p: the source holds only $(alloc "$img") bytes"
	esac
	both_views "$img" "$mnt"
	[ "$(alloc "$mnt/p-$p.raw")" -eq $written ] ||
		fail "$p: guest view holds $(alloc "$mnt/p-$p.raw") bytes, not $written"
	meta=$(metadata_allowance "$img")
	[ "$(alloc "$mnt/p-$p.qcow2")" -le $((written + meta)) ] ||
		fail "$p: file view holds $(alloc "$mnt/p-$p.qcow2") bytes"
done

base=$TMP/base.qcow2
qemu-img create -q -f qcow2 "$base" 8M
qemu-io -f qcow2 -c 'write -P 0x11 0 8M' "$base" >/dev/null
img=$TMP/p-top.qcow2
qemu-img create -q -f qcow2 -o extended_l2=on,preallocation=metadata \
	-b base.qcow2 -F qcow2 "$img" 16M
qemu-io -f qcow2 -c 'write -P 1 1M 1M' -c 'write -P 2 10489856 8192' \
	-c 'write -z 2M 64k' -c 'write -P 4 4M 2k' "$img" >/dev/null
vs -q "$base" "$mnt/"
both_views "$img" "$mnt"
# Guest: base data except 2M-2M+64k (zeros), beyond 8M only what was written.
qemu-img convert -f qcow2 -O raw "$base" "$TMP/base.raw"
cmp -n $M "$TMP/base.raw" "$mnt/p-top.raw" || fail "base not read through"
[ "$(alloc "$mnt/p-top.raw")" -eq $((8 * M - 64 * 1024 + 8192)) ] ||
	fail "p-top guest view holds $(alloc "$mnt/p-top.raw") bytes"
