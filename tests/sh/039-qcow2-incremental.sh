#!/usr/bin/env bash
# Proves: later syncs of a qcow2 image write about what the guest changed.
# For a v3 image with 64 KiB clusters and a v2 image with 4 KiB clusters,
# in both views: a run with nothing changed writes nothing (index
# trusted); 1 MiB rewritten in place, 1 MiB written into unallocated space
# and 1 MiB written at an unaligned offset each make the next run write
# at least 1 MiB and at most 1 MiB + 8 KiB (two partial 4 KiB blocks) in
# the guest view, and at most that plus 3 clusters (the L2 table, a
# refcount block, a new L2 table) in the file view; the run after each
# change writes nothing; the targets pass the checks of tests/qcow2.sh
# after every run.
. "$VMSYNC_TOP/tests/functions.sh"
. "$VMSYNC_TOP/tests/qcow2.sh"
requires_btrfs
requires qemu-img qemu-io jq

mnt=$(mkbtrfs 2G)
K=1024

# run WHAT MIN MAX [VIEW...]: sync, check written_bytes, check the target,
# then a run that writes nothing.
run() {
	local what=$1 min=$2 max=$3 w
	shift 3
	sync_stats "$@" "$img" "$mnt/"
	w=$(stat_of written_bytes)
	if [ "$w" -lt "$min" ] || [ "$w" -gt "$max" ]; then
		fail "$what ($*): wrote $w bytes, not $min..$max"
	fi
	[ "$(stat_of index)" != none ] || fail "$what ($*): no index"
	case "$*" in
	*raw*) guest_ok "$img" "$mnt/$name.raw" ;;
	*) file_ok "$img" "$mnt/$name.qcow2" ;;
	esac
	sync_stats "$@" "$img" "$mnt/"
	[ "$(stat_of written_bytes)" -eq 0 ] ||
		fail "$what ($*): unchanged run wrote $(stat_of written_bytes)"
	[ "$(stat_of punched_bytes)" -eq 0 ] ||
		fail "$what ($*): unchanged run punched $(stat_of punched_bytes)"
	[ "$(stat_of index)" = trusted ] || fail "$what ($*): index $(stat_of index)"
}

for v in "1.1 64K 65536" "0.10 4K 4096"; do
	read -r compat csname cs <<< "$v"
	name=inc-$compat-$csname
	img=$TMP/$name.qcow2
	qemu-img create -q -f qcow2 -o "compat=$compat,cluster_size=$cs" "$img" 64M
	qemu-io -f qcow2 -c 'write -P 1 0 16M' -c 'write -P 2 32M 8M' \
		"$img" >/dev/null
	vs -q "$img" "$mnt/"
	vs -q -O raw "$img" "$mnt/"
	run "unchanged" 0 0
	run "unchanged" 0 0 -O raw

	gmax=$((M + 8 * K))
	fmax=$((gmax + 3 * cs))
	qemu-io -f qcow2 -c 'write -P 0x5a 4M 1M' "$img" >/dev/null
	run "1 MiB rewritten" $M $fmax
	run "1 MiB rewritten" $M $gmax -O raw
	qemu-io -f qcow2 -c 'write -P 0x5b 20M 1M' "$img" >/dev/null
	run "1 MiB newly allocated" $M $fmax
	run "1 MiB newly allocated" $M $gmax -O raw
	qemu-io -f qcow2 -c "write -P 0x5c $((50 * M + 1234)) 1M" "$img" >/dev/null
	run "1 MiB at an unaligned offset" $M $fmax
	run "1 MiB at an unaligned offset" $M $gmax -O raw
done
