#!/usr/bin/env bash
# Proves: vmsync --verify checks a backup against its index without the
# source, and says where it differs.
#  - A fresh backup, and its copy in a --snapshot, verify: exit 0, JSON
#    "complete": true, every data byte read.
#  - One changed byte, a punched data block, zeros written into a
#    recorded hole, and a dirty index each give exit 7 and one line with
#    the block's offset and what is wrong (JSON: the same ranges;
#    "complete": false for the dirty index).  A file longer than its
#    index says, and a file without an index, are refused (7 and 2).
#  - A qcow2 backup whose L1 table points past its end: the metadata
#    check reports it ("metadata_ok": false), exit 7.
#  - The reads leave nothing of the image in the page cache.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires jq fincore qemu-img qemu-io

mnt=$(mkbtrfs 1G)
btrfs subvolume create "$mnt/vol" > /dev/null
K=65536
M=1048576
src=$TMP/disk.img
"$HOLES" make "$src" 64M 0:4M:1 20M:8M:2 63M:1M:3
vs -q --snapshot "$src" "$mnt/vol/"
tgt=$mnt/vol/disk.img
idx=$mnt/vol/.disk.img.vmsync-index
snap=$(ls -d "$mnt/vol/.vmsync-snapshots"/*)
dd if="$tgt" iflag=nocache count=0 status=none
VERIFY=$("$VMSYNC" --verify --json "$tgt") || fail "fresh backup: exit $?"
[ "$(printf '%s' "$VERIFY" | jq -r '.images[0].complete')" = true ] || fail "not complete: $VERIFY"
[ "$(printf '%s' "$VERIFY" | jq -r '.images[0].read_bytes')" -eq $((13 * M)) ] ||
	fail "read $(printf '%s' "$VERIFY" | jq -r '.images[0].read_bytes') bytes, not the 13 MiB of data"
cached=$(fincore --bytes --noheadings --output RES "$tgt")
[ "$cached" -le $((4 * M)) ] || fail "$cached bytes of the image left in the page cache"
vs -q --verify "$snap/disk.img" || fail "the snapshot's copy: exit $?"

bad() {		# bad WHAT OFFSET REASON: --verify exits 7 naming it
	local rc=0
	"$VMSYNC" --verify "$tgt" 2> "$TMP/err" || rc=$?
	[ $rc -eq 7 ] || fail "$1: exit $rc: $(cat "$TMP/err")"
	grep -qx "vmsync: $tgt: offset $2: $K bytes: $3" "$TMP/err" ||
		fail "$1: no line for offset $2: $(cat "$TMP/err")"
	[ "$(grep -c offset "$TMP/err")" -eq 1 ] || fail "$1: not one range: $(cat "$TMP/err")"
	VERIFY=$("$VMSYNC" --verify --json "$tgt" 2> /dev/null) || :
	[ "$(printf '%s' "$VERIFY" | jq -c '[.images[0].bad[] | .offset]')" = "[$2]" ] ||
		fail "$1: JSON: $VERIFY"
	vs -q "$src" "$mnt/vol/"	# repaired by a sync
	vs -q --verify "$tgt" || fail "$1: not repaired"
}
printf 'X' | dd of="$tgt" bs=1 seek=$((21 * M + 5)) conv=notrunc status=none
bad "a changed byte" $((21 * M)) "differs from the index"
fallocate -p -o $((2 * M)) -l $K "$tgt"
bad "a punched block" $((2 * M)) "a hole where the index records data"
dd if=/dev/zero of="$tgt" bs=$K seek=$((40 * M / K)) count=1 conv=notrunc status=none
bad "zeros in a hole" $((40 * M)) "data (zeros) where the index records a hole"

"$VMSYNC_HELPERS/idxforge" set "$idx" flags=1
must_fail 7 "partial: its index is dirty" "$VMSYNC" --verify "$tgt"
VERIFY=$("$VMSYNC" --verify --json "$tgt" 2> /dev/null) || :
[ "$(printf '%s' "$VERIFY" | jq -r '.images[0].complete')" = false ] || fail "dirty index: $VERIFY"
"$VMSYNC_HELPERS/idxforge" set "$idx" flags=0
truncate -s $((64 * M + K)) "$tgt"
must_fail 7 "67174400 bytes, but the index describes 67108864" "$VMSYNC" --verify "$tgt"
must_fail 2 "no vmsync index beside it" "$VMSYNC" --verify "$src"

q=$TMP/vm.qcow2
qemu-img create -q -f qcow2 "$q" 64M
qemu-io -f qcow2 -c 'write -P 7 0 4M' -c 'write -P 8 32M 1M' "$q" > /dev/null
vs -q "$q" "$mnt/vol/"
vs -q --verify "$mnt/vol/vm.qcow2" || fail "qcow2 backup: exit $?"
l1=$(od -An -tx1 -j40 -N8 "$mnt/vol/vm.qcow2" | tr -d ' \n')
printf '\x80\x00\x00\x7f\xff\xff\x00\x00' | dd of="$mnt/vol/vm.qcow2" bs=1 \
	seek=$((16#$l1)) conv=notrunc status=none
rc=0
VERIFY=$("$VMSYNC" --verify --json "$mnt/vol/vm.qcow2" 2> "$TMP/err") || rc=$?
[ $rc -eq 7 ] || fail "damaged qcow2: exit $rc"
[ "$(printf '%s' "$VERIFY" | jq -r '.images[0].metadata_ok')" = false ] ||
	fail "damaged qcow2: metadata_ok: $VERIFY $(cat "$TMP/err")"
grep -v "offset [0-9]*: $K bytes" "$TMP/err" | grep -q "vm.qcow2" ||
	fail "damaged qcow2: the metadata error is not named: $(cat "$TMP/err")"
echo "backups verified; damage found and placed"
