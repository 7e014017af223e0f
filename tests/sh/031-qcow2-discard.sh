#!/usr/bin/env bash
# Proves: clusters the guest zeroed or discarded cost nothing on the file
# view target, although qemu leaves some of them allocated in the source
# file.  Covered, for v3 and v2: zero writes over a hole, over data (the
# host cluster stays referenced from the zero-flagged L2 entry but is
# dead) and with -u (freed); discards with pass-discard-request=off (the
# host clusters stay allocated in the source -- checked with the source's
# data ranges -- but nothing references them) and with it on (punched in
# the source too).  After the first sync, the discards of the second round
# turn into punches on the target.  Each time: qemu-img check clean,
# qemu-img compare equal in both views, and the target's allocation at most
# the live bytes: the top layer's data per qemu-img map plus the metadata
# allowance of tests/qcow2.sh (header, L1, refcount table and block, L2
# tables, doubled) -- and well below the source's.
. "$VMSYNC_TOP/tests/functions.sh"
. "$VMSYNC_TOP/tests/qcow2.sh"
requires_btrfs
requires qemu-img qemu-io jq

mnt=$(mkbtrfs 2G)
K=1024

live_ok() {	# live_ok IMG TGT: the target holds at most the live bytes
	local img=$1 tgt=$2 live
	qmap_top "$img" > "$TMP/top.ranges"
	live=$(( $(sum_ranges "$TMP/top.ranges") + $(metadata_allowance "$img") ))
	[ "$(alloc "$tgt")" -le "$live" ] ||
		fail "$tgt: holds $(alloc "$tgt") bytes, more than the $live live"
}

for compat in 1.1 0.10; do
	img=$TMP/d$compat.qcow2
	name=d$compat
	qemu-img create -q -f qcow2 -o compat=$compat "$img" 64M
	qemu-io -f qcow2 -c 'write -P 0x01 0 24M' -c 'write -P 0x02 40M 2M' \
		"$img" >/dev/null
	# Host offsets of the ranges discarded without passing it down.
	h1=$(qmap_host "$img" $((8 * M)))
	h2=$(qmap_host "$img" $((20 * M)))
	if [ -z "$h1" ] || [ -z "$h2" ]; then
		fail "no host offsets in the map"
	fi
	qemu-io -f qcow2 \
		-c 'write -z 30M 64k' \
		-c 'write -z 2M 128k' \
		-c 'write -z -u 4M 256k' \
		-c 'discard 6M 1M' \
		"$img" >/dev/null
	qemu-io --image-opts \
		"driver=qcow2,pass-discard-request=off,file.filename=$img" \
		-c 'discard 8M 4M' >/dev/null
	holds "$img" "$h1" $((4 * M)) ||
		fail "$compat: discard with pass-discard-request=off freed the host clusters"
	both_views "$img" "$mnt"
	live_ok "$img" "$mnt/$name.qcow2"
	[ "$(alloc "$mnt/$name.qcow2")" -le $(( $(alloc "$img") - 4 * M )) ] ||
		fail "$compat: target holds $(alloc "$mnt/$name.qcow2") bytes, source $(alloc "$img")"

	# Second round: dead clusters appear after a sync and are punched.
	before=$(alloc "$mnt/$name.qcow2")
	qemu-io --image-opts \
		"driver=qcow2,pass-discard-request=off,file.filename=$img" \
		-c 'discard 20M 3M' -c 'write -z 40M 1M' >/dev/null
	holds "$img" "$h2" $((3 * M)) ||
		fail "$compat: second discard freed the host clusters"
	qemu-io -f qcow2 -c 'discard 16M 2M' "$img" >/dev/null
	sync_stats "$img" "$mnt/"
	[ "$(stat_of punched_bytes)" -ge $((5 * M)) ] ||
		fail "$compat: punched $(stat_of punched_bytes) bytes, not the 6 MiB dead"
	[ "$(stat_of written_bytes)" -le $((512 * K)) ] ||
		fail "$compat: wrote $(stat_of written_bytes) bytes for metadata changes"
	file_ok "$img" "$mnt/$name.qcow2"
	live_ok "$img" "$mnt/$name.qcow2"
	after=$(alloc "$mnt/$name.qcow2")
	[ "$after" -le $((before - 5 * M)) ] ||
		fail "$compat: target allocation $before -> $after after discarding 6 MiB"
	vs -q -O raw "$img" "$mnt/"
	guest_ok "$img" "$mnt/$name.raw"
done
