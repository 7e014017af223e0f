#!/usr/bin/env bash
# Proves: a hostile client of vmsync --server --root DIR (played by
# tests/helpers/vspeer.py, after a valid HELLO, OPEN and BEGIN of 1 MiB)
# cannot reach past the size it declared: a WRITE at 2^60 or across the
# end, a PUNCH at 2^62, a RECORD whose entry would wrap into the index
# header, DIGESTS and SUMMARIES past the last entry, and lengths that
# wrap or exceed a block are each refused with one ERROR naming the
# target and the offset, exit 3 (a push's protocol error); the target
# keeps its size and the index its header.  Garbage frames (a length
# over the limit, a bad checksum, before or after OPEN) are answered with
# one ERROR saying so, not a silent hang-up.  Names with terminal escapes
# are refused without the server printing anything.  A SNAPSHOT request
# naming a target outside the root, the name "..", or 2^32-1 images is
# refused with one ERROR, and no snapshot is taken.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires python3 od

mnt=$(mkbtrfs 1G)
root=$mnt/root
mkdir -p "$root/images"
PEER=$VMSYNC_TOP/tests/helpers/vspeer.py
tgt=$root/images/t.img
idx=$root/images/.t.img.vmsync-index

hostile() {	# SCENARIO: play it; the server's messages in $TMP/peer
	python3 "$PEER" client "$1" images/ -- "$VMSYNC" --server \
		--root "$root" > "$TMP/peer" 2> "$TMP/server-err" ||
		fail "$1: the peer failed"
	[ ! -s "$TMP/server-err" ] || { cat "$TMP/server-err"; fail "$1: the server printed"; }
}
expect() {	# SCENARIO ERE: one ERROR matching ERE, then exit 3
	hostile "$1"
	[ "$(grep -c '^ERROR' "$TMP/peer")" -eq 1 ] &&
		grep -Eq "^ERROR 3 '$2" "$TMP/peer" && grep -qx 'exit 3' "$TMP/peer" ||
		{ cat "$TMP/peer"; fail "$1: want one ERROR 3 matching /$2/"; }
}
magic() {
	od -An -c -N8 "$idx" | tr -d ' '
}

for sc in write-far write-end punch-far; do
	expect "$sc" "images/t.img: offset [0-9]+: (WRITE|PUNCH) of 4096 bytes past the end of the image \(1048576 bytes\)'"
	[ "$(stat -c %s "$tgt")" -eq 1048576 ] ||
		fail "$sc: the target is $(stat -c %s "$tgt") bytes"
	echo "$sc: refused"
done
for sc in record-far record-end digests-far summaries-end; do
	expect "$sc" "images/t.img: entry [0-9]+: [A-Z]+ of [0-9]+ entries past the end of the image \(16 entries\)'"
	[ "$(magic)" = VMSYNCIX ] || fail "$sc: the index header was overwritten: $(magic)"
	echo "$sc: refused"
done
for sc in write-wrap write-huge punch-wrap; do
	expect "$sc" "client: malformed message"
	echo "$sc: refused"
done
expect frame-huge "client: garbage on the wire \(message too long\)'"
expect frame-checksum "client: garbage on the wire \(bad checksum\)'"
hostile garbage-hello
grep -qx "ERROR 1 'client: garbage on the wire (bad checksum)'" "$TMP/peer" ||
	{ cat "$TMP/peer"; fail "garbage-hello: no ERROR"; }
hostile escape-name
grep -q "^ERROR 3 'images/.*No such file" "$TMP/peer" ||
	{ cat "$TMP/peer"; fail "escape-name"; }
[ "$(stat -c %s "$tgt")" -eq 1048576 ] && [ "$(magic)" = VMSYNCIX ] ||
	fail "the target or its index changed"
for sc in snapshot-outside snapshot-dotdot snapshot-many; do
	hostile "$sc"
	[ "$(grep -c '^ERROR' "$TMP/peer")" -eq 1 ] &&
		grep -Eq "^ERROR 1 '(client: malformed SNAPSHOT message|.*outside the directory this server is confined to)'" "$TMP/peer" ||
		{ cat "$TMP/peer"; fail "$sc: want one ERROR 1"; }
	[ -z "$(btrfs subvolume list "$mnt")" ] || fail "$sc: a snapshot was taken"
	echo "$sc: refused"
done
