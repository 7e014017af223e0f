#!/usr/bin/env bash
# Proves: images with extended L2 entries (32 subclusters per cluster) are
# synced right in both views: subcluster writes leaving the rest of a
# cluster unallocated, zero writes on subclusters of a hole and of data,
# a discarded cluster (all subclusters zero), data at unaligned offsets;
# at 64 KiB clusters (2 KiB subclusters) and 2 MiB clusters (64 KiB
# subclusters), and over a backing file whose data must show through the
# unallocated subclusters and be masked by the zero ones.  Checks of
# tests/qcow2.sh in both views, plus: the host bytes of subclusters zeroed
# after being written (still allocated in the source) are holes on the
# file-view target.
. "$VMSYNC_TOP/tests/functions.sh"
. "$VMSYNC_TOP/tests/qcow2.sh"
requires_btrfs
requires qemu-img qemu-io jq

mnt=$(mkbtrfs 2G)

# not_held TGT OFF LEN: no data of TGT in the 4 KiB blocks (the target
# filesystem's) that lie wholly inside [OFF, OFF + LEN).
not_held() {
	local o=$(( ($2 + 4095) / 4096 * 4096 )) e=$(( ($2 + $3) / 4096 * 4096 ))
	[ "$o" -lt "$e" ] || fail "not_held $*: no whole block"
	data_ranges "$1" | awk -v o="$o" -v e="$e" '
		$1 != "total" && $1 < e && o < $1 + $2 {
			printf "target holds %d+%d\n", $1, $2; f = 1 }
		END { exit f }' || fail "$1: dead subclusters at $o-$e are not holes"
}

# zero_host IMG GUEST: host offset of a zero range at GUEST with one.
zero_host() {
	qemu-img map --output=json -f qcow2 "$1" | jq -r --argjson g "$2" \
		'.[] | select(.start == $g and .zero and .offset != null) | .offset'
}

# The recipe of FORMATS.md, 64 KiB clusters, plus unaligned bits.
img=$TMP/el2.qcow2
qemu-img create -q -f qcow2 -o extended_l2=on "$img" 4M
qemu-io -f qcow2 -c 'write -P 1 0 4k' -c 'write -P 2 8k 2k' \
	-c 'write -z 64k 2k' -c 'write -P 3 128k 64k' -c 'write -z 130k 4k' \
	-c 'write -z 136k 16k' -c 'write -P 4 1000001 3001' \
	-c 'discard 256k 64k' \
	-c 'write -P 5 320k 64k' -c 'write -z 320k 64k' "$img" >/dev/null
h=$(zero_host "$img" $((136 * 1024)))
[ -n "$h" ] || fail "no preallocated zero subclusters at 136k"
holds "$img" "$h" $((16 * 1024)) || fail "el2: source dropped the dead bytes"
both_views "$img" "$mnt"
not_held "$mnt/el2.qcow2" "$h" $((16 * 1024))

# 2 MiB clusters, 64 KiB subclusters.
img=$TMP/el2-2m.qcow2
qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=2M "$img" 64M
qemu-io -f qcow2 -c 'write -P 1 0 4k' -c 'write -P 2 8M 64k' \
	-c 'write -P 3 16M 2M' -c 'write -z 16M 128k' -c 'write -z 17M 64k' \
	-c 'write -P 4 21300000 3000' -c 'write -z 40M 2M' "$img" >/dev/null
h=$(zero_host "$img" $((16 * M)))
[ -n "$h" ] || fail "no preallocated zero subclusters at 16M"
holds "$img" "$h" $((128 * 1024)) || fail "el2-2m: source dropped the dead bytes"
both_views "$img" "$mnt"
not_held "$mnt/el2-2m.qcow2" "$h" $((128 * 1024))
# Unwritten subclusters cost nothing: the target holds the data written
# (4k + 64k + 2M - 192k + the 3000 bytes' subcluster) and a little metadata.
[ "$(alloc "$mnt/el2-2m.raw")" -le $(( (4 + 64 + 2048 - 192 + 64) * 1024 )) ] ||
	fail "el2-2m guest view holds $(alloc "$mnt/el2-2m.raw") bytes"
[ "$(alloc "$mnt/el2-2m.qcow2")" -le $(( (4 + 64 + 2048 - 192 + 64 + 256) * 1024 )) ] ||
	fail "el2-2m file view holds $(alloc "$mnt/el2-2m.qcow2") bytes"

# Over a backing file full of data.
base=$TMP/base.qcow2
qemu-img create -q -f qcow2 "$base" 4M
qemu-io -f qcow2 -c 'write -P 0x11 0 4M' "$base" >/dev/null
img=$TMP/el2-top.qcow2
qemu-img create -q -f qcow2 -o extended_l2=on -b base.qcow2 -F qcow2 "$img"
qemu-io -f qcow2 -c 'write -P 2 8k 2k' -c 'write -z 64k 2k' \
	-c 'discard 128k 64k' -c 'write -P 3 192k 64k' -c 'write -z 194k 4k' \
	-c 'write -P 4 1000001 3001' -c 'write -z 2M 6k' "$img" >/dev/null
vs -q "$base" "$mnt/"
both_views "$img" "$mnt"
# The base shows through: bytes 0-8k of the guest are the base's.
qemu-img convert -f qcow2 -O raw "$base" "$TMP/base.raw"
cmp -n 8192 "$TMP/base.raw" "$mnt/el2-top.raw" ||
	fail "backing data not read through"
