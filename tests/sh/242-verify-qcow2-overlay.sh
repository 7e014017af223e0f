#!/usr/bin/env bash
# Proves: --verify of the file-view backup of a qcow2 overlay (an image
# with a backing file, which its backup does not include) checks the
# overlay's own metadata and passes: exit 0, metadata_ok true, locally and
# through a server; with the backing file's backup beside it and without.
# The metadata check opened the backup as a sync opens a source, with no
# directory allowed for the files it names, so every overlay's backup was
# reported damaged (exit 7: "backing file 'base.qcow2' refused").  A
# backup whose own L1 table is damaged still fails with exit 7.
. "$VMSYNC_TOP/tests/functions.sh"
. "$VMSYNC_TOP/tests/qcow2.sh"
requires qemu-img qemu-io jq

cd "$TMP" || fail "cd $TMP"
mkdir with alone
qemu-img create -q -f qcow2 base.qcow2 4M
qemu-io -f qcow2 -c 'write -P 0x11 0 4M' base.qcow2 > /dev/null
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2
qemu-io -f qcow2 -c 'write -P 0x22 1M 64k' -c 'write -z 2M 64k' top.qcow2 > /dev/null
vs -q base.qcow2 with/ || fail "sync base.qcow2: exit $?"
vs -q top.qcow2 with/ || fail "sync top.qcow2: exit $?"
vs -q top.qcow2 alone/ || fail "sync top.qcow2 alone: exit $?"

for t in with/top.qcow2 alone/top.qcow2; do
	rc=0
	out=$(vs --verify --json "$t" 2> "$TMP/err") || rc=$?
	[ "$rc" -eq 0 ] || fail "--verify $t: exit $rc: $(cat "$TMP/err")"
	[ "$(printf '%s' "$out" | jq -r '.images[0].metadata_ok')" = true ] ||
		fail "--verify $t: $out"
	rvs -q --verify "localhost:$TMP/$t" ||
		fail "--verify localhost:$TMP/$t: exit $?"
done

# The overlay's own damage is still found: an L1 entry with reserved bits.
l1=$(be64 alone/top.qcow2 40)
poke alone/top.qcow2 "$l1" 7f
rc=0
out=$(vs --verify --json alone/top.qcow2 2> /dev/null) || rc=$?
[ "$rc" -eq 7 ] || fail "--verify of a damaged overlay: exit $rc"
[ "$(printf '%s' "$out" | jq -r '.images[0].metadata_ok')" = false ] ||
	fail "--verify of a damaged overlay: $out"
echo "ok"
