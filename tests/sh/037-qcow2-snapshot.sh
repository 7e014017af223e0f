#!/usr/bin/env bash
# Proves: internal snapshots.  An image with two snapshots taken between
# writes, zero writes and discards (clusters the active disk dropped but a
# snapshot still references): the guest view is the active disk (checks of
# tests/qcow2.sh); the file view passes qemu-img check, compares equal,
# lists the same snapshots, and each snapshot read back from the target
# (`qemu-img convert -l snapshot.name=...`) equals the same snapshot read
# from the source -- so the snapshot tables and the clusters only they
# reference are live.  A snapshot deleted afterwards frees clusters that
# become holes on the next sync.
. "$VMSYNC_TOP/tests/functions.sh"
. "$VMSYNC_TOP/tests/qcow2.sh"
requires_btrfs
requires qemu-img qemu-io jq

mnt=$(mkbtrfs 2G)
img=$TMP/sn.qcow2
tgt=$mnt/sn.qcow2

qemu-img create -q -f qcow2 "$img" 64M
qemu-io -f qcow2 -c 'write -P 0x55 0 128k' -c 'write -P 0x56 8M 4M' \
	"$img" >/dev/null
qemu-img snapshot -c snap1 "$img"
qemu-io -f qcow2 -c 'write -P 0x66 64k 64k' -c 'discard 8M 2M' \
	-c 'write -z 11M 512k' -c 'write -P 0x67 20M 2M' "$img" >/dev/null
qemu-img snapshot -c snap2 "$img"
qemu-io -f qcow2 -c 'write -P 0x77 20M 1M' -c 'discard 10M 1M' \
	-c 'write -P 0x78 1000001 3001' "$img" >/dev/null

snaps_ok() {	# snaps_ok NAME...: each snapshot equal on source and target
	local s
	[ "$(qemu-img snapshot -l "$img" | awk 'NR > 2 { print $2 }')" = \
	  "$(qemu-img snapshot -l "$tgt" | awk 'NR > 2 { print $2 }')" ] ||
		fail "snapshot lists differ"
	for s in "$@"; do
		qemu-img convert -f qcow2 -O raw -l "snapshot.name=$s" "$img" "$TMP/a.raw"
		qemu-img convert -f qcow2 -O raw -l "snapshot.name=$s" "$tgt" "$TMP/b.raw" ||
			fail "$s: cannot be read from the target"
		cmp "$TMP/a.raw" "$TMP/b.raw" || fail "snapshot $s differs"
		cmp -s "$TMP/a.raw" "$mnt/sn.raw" && fail "$s reads as the active disk"
		rm "$TMP/a.raw" "$TMP/b.raw"
	done
	return 0
}

both_views "$img" "$mnt"
snaps_ok snap1 snap2

# Delete snap1: the clusters only it referenced (8M-10M, 11M-11.5M and the
# old 64k-128k) are dead now, and are punched.
before=$(alloc "$tgt")
qemu-img snapshot -d snap1 "$img"
sync_stats "$img" "$mnt/"
file_ok "$img" "$tgt"
snaps_ok snap2
[ "$(alloc "$tgt")" -le $((before - 2 * M)) ] ||
	fail "deleting snap1: target allocation $before -> $(alloc "$tgt")"
vs -q -O raw "$img" "$mnt/"
guest_ok "$img" "$mnt/sn.raw"
