#!/usr/bin/env bash
# Proves: snapshot retention is the server's policy, and --keep only ever
# deletes snapshots vmsync took for the same image.
#  - vmsync --server --root DIR --keep 2 (a forced command): pushes with
#    --snapshot and no --keep leave the 2 newest; a client's --keep 1
#    deletes no more than that (still 2); a client's --keep 3 keeps 3.
#  - Two images in one subvolume: --keep 1 for one image (pushed, or local)
#    deletes that image's older snapshots, never the ones taken for the
#    other, nor a snapshot someone else took of the subvolume.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs

mnt=$(mkbtrfs 1G)
root=$mnt/root
btrfs subvolume create "$root" > /dev/null
btrfs subvolume create "$root/vol" > /dev/null
snaps=$root/vol/.vmsync-snapshots
a=$TMP/a.img
b=$TMP/b.img
"$HOLES" make "$a" 8M 0:1M:1
"$HOLES" make "$b" 8M 0:1M:2
printf '#!/bin/sh\nexec "%s" --server --root="%s" --keep 2\n' "$VMSYNC" "$root" > "$TMP/fc"
chmod +x "$TMP/fc"
fvs() {
	"$VMSYNC" -e "$TMP/fc" -q "$@"
}
count() {	# snapshots in $snaps holding a copy of $1 as FILE $2
	local n=0 s
	for s in "$snaps"/*; do
		cmp -s "$1" "$s/$2" && n=$((n + 1))
	done
	echo "$n"
}
total() {
	ls -A "$snaps" | wc -l
}

# The server's --keep 2.
for i in 1 2 3 4; do
	"$HOLES" fill "$a" "$i"M:64K:$((i + 10))
	fvs --snapshot "$a" host:vol/
done
[ "$(total)" -eq 2 ] || fail "server --keep 2: $(total) snapshots after 4 pushes"
fvs --snapshot --keep 1 "$a" host:vol/
[ "$(total)" -eq 2 ] || fail "a client's --keep 1 went below the server's 2: $(total)"
fvs --snapshot --keep 3 "$a" host:vol/
[ "$(total)" -eq 3 ] || fail "a client's --keep 3 was not honoured: $(total)"

# Another image in the same subvolume, and someone else's snapshot.
btrfs subvolume snapshot -r "$root/vol" "$snaps/admin" > /dev/null
taken() {	# taken CMD...: run CMD, print the snapshot it added
	ls "$snaps" > "$TMP/prev"
	"$@"
	ls "$snaps" | grep -vxF -f "$TMP/prev"
}
b1=$(taken fvs --snapshot "$b" host:vol/)
b2=$(taken fvs --snapshot "$b" host:vol/)
[ -n "$b1" ] && [ -n "$b2" ] || fail "pushes of b took no snapshot"
"$HOLES" fill "$a" 6M:64K:20
a1=$(taken fvs --snapshot --keep 1 "$a" host:vol/)
a2=$(taken vs -q --snapshot --keep 1 "$a" "$root/vol/")
for s in "$b1" "$b2" admin "$a2"; do
	[ -d "$snaps/$s" ] || fail "--keep 1 for a deleted $s"
done
[ ! -e "$snaps/$a1" ] || fail "a local --keep 1 for a kept a's older snapshot"
[ "$(total)" -eq 4 ] || fail "after --keep 1 for a: $(total) entries, not 4 (admin, a, b, b)"
# Local --keep 1 for b: b's older snapshot goes, a's stay.
b3=$(taken vs -q --snapshot --keep 1 "$b" "$root/vol/")
[ ! -e "$snaps/$b1" ] && [ ! -e "$snaps/$b2" ] || fail "--keep 1 for b kept b's older snapshots"
for s in admin "$a2" "$b3"; do
	[ -d "$snaps/$s" ] || fail "--keep 1 for b deleted $s"
done
