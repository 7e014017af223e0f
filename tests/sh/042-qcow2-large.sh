#!/usr/bin/env bash
# Proves: a qcow2 image of 1 TiB virtual size, with data at its start, in
# its middle and in its last cluster and a 10 GiB zeroed range, is synced
# in both views with the content equal (qemu-img compare), the guest-view
# target holding only the 3 MiB written, and the peak memory of each run
# bounded (under 64 MiB): mapping goes through a small L2 cache and never
# holds the whole map.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires qemu-img qemu-io
[ -x /usr/bin/time ] || skip "needs /usr/bin/time"

mnt=$(mkbtrfs 2G)
img=$TMP/big.qcow2
qemu-img create -q -f qcow2 "$img" 1T
qemu-io -f qcow2 -c 'write -P 1 0 1M' -c 'write -P 2 500G 1M' \
	-c 'write -P 3 1048575M 1M' -c 'write -z -n 100G 10G' "$img" >/dev/null

peak() {	# peak RSS in KiB of vmsync ARGS
	/usr/bin/time -f %M -o "$TMP/rss" "$VMSYNC" -q "$@" ||
		fail "vmsync $*"
	cat "$TMP/rss"
}
for view in "" "-O raw"; do
	# shellcheck disable=SC2086
	kib=$(peak $view "$img" "$mnt/")
	[ "$kib" -lt 65536 ] || fail "view '$view': peak RSS $kib KiB"
done
qemu-img compare -q -f qcow2 -F raw "$img" "$mnt/big.raw" ||
	fail "guest view differs"
qemu-img compare -q -f qcow2 -F qcow2 "$img" "$mnt/big.qcow2" ||
	fail "file view differs"
qemu-img check -q -f qcow2 "$mnt/big.qcow2" || fail "file view: check"
[ "$(stat -c %s "$mnt/big.raw")" -eq $((1 << 40)) ] || fail "raw size"
[ "$(alloc "$mnt/big.raw")" -eq $((3 << 20)) ] ||
	fail "guest view holds $(alloc "$mnt/big.raw") bytes, not 3 MiB"
