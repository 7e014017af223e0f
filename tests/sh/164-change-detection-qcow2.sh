#!/usr/bin/env bash
# Proves: change detection works on qcow2 images in both views, the guest
# disk (-O raw) and the file itself, each with its own --state-dir: a
# rewrite in place is skipped around (the file view then equals the
# source), and a write that grows the file, discards and zero writes are
# skipped around too.  After every run each target is exact: the guest
# view is the guest disk, the file view passes file_ok and equals what a
# full sync (no change detection) of the same image writes.
. "$VMSYNC_TOP/tests/functions.sh"
. "$VMSYNC_TOP/tests/qcow2.sh"
requires_btrfs
requires jq qemu-img qemu-io

mnt=$(mkbtrfs 1G)
btrfs subvolume create "$mnt/images" > /dev/null

q=$mnt/images/vm.qcow2
qemu-img create -q -f qcow2 "$q" 64M
qemu-io -f qcow2 -c 'write -P 0x11 0 8M' -c 'write -P 0x22 32M 8M' "$q" > /dev/null
mkdir "$mnt/q"
views=("--state-dir=$mnt/st-file" "-O raw --state-dir=$mnt/st-raw")
# qsync WHAT SKIP: sync both views; exact; SKIP "yes" wants skipped > 0 in
# both, "raw" only in the guest view.
qsync() {
	local v
	for v in "${views[@]}"; do
		# shellcheck disable=SC2086
		sync_stats $v "$q" "$mnt/q/"
		case $v in
		-O*)	guest_ok "$q" "$mnt/q/vm.raw" "$1 (guest view)" ;;
		*)	file_ok "$q" "$mnt/q/vm.qcow2" "$1 (file view)"
			vs -q --source-snapshot=never "$q" "$TMP/full.qcow2"
			cmp "$TMP/full.qcow2" "$mnt/q/vm.qcow2" ||
				fail "$1: file view differs from a full sync's"
			rm "$TMP/full.qcow2" "$TMP/.full.qcow2.vmsync-index" ;;
		esac
		case $2,$v in
		yes,*|raw,-O*)
			[ "$(stat_of skipped_bytes)" -gt 0 ] ||
				fail "$1 ($v): nothing skipped" ;;
		esac
	done
}
qsync "first" no
qemu-io -f qcow2 -c 'write -P 0x5a 1M 64K' -c 'write -P 0x5b 33M 100K' "$q" > /dev/null
qsync "rewritten in place" yes
cmp "$q" "$mnt/q/vm.qcow2" || fail "file view after writes in place"
qsync "unchanged" yes
qemu-io -f qcow2 -c 'write -P 0x5c 16M 1M' "$q" > /dev/null
qsync "grown" yes
qemu-io -f qcow2 -c 'discard 4M 1M' -c 'write -z 36M 1M' "$q" > /dev/null
qsync "discard and zero writes" yes
