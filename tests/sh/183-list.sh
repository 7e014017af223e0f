#!/usr/bin/env bash
# Proves: vmsync --list shows each backup in a directory and its
# generations, newest last: the live copy, vmsync's snapshots and
# snapper-style ones (.snapshots/N/snapshot/), each with its time (ISO 8601
# UTC), sizes, the bytes only it holds (as btrfs filesystem du counts
# them), and whether it is complete.
#  - Two runs with --snapshot, a change, and a snapper-layout snapshot: a
#    has four generations in time order, the live copy last; b, synced
#    once before them, is in every snapshot too.
#  - The block rewritten since the last snapshot is the live copy's only
#    exclusive data (64 KiB); every generation's exclusive bytes are what
#    btrfs filesystem du says; a dirty index makes a generation partial.
#  - A generation's path restores that generation (passed back as SRC).
#  - The table lists the same generations; a directory that does not
#    exist is an error (exit 1).
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires jq

mnt=$(mkbtrfs 1G)
btrfs subvolume create "$mnt/vol" > /dev/null
mkdir "$mnt/vol/images"
d=$mnt/vol/images
K=65536
"$HOLES" make "$TMP/a.img" 16M 0:4M:1
"$HOLES" make "$TMP/b.img" 8M 0:1M:2
vs -q "$TMP/b.img" "$d/"
vs -q --snapshot "$TMP/a.img" "$d/"
cp "$TMP/a.img" "$TMP/a1.img"
sleep 1.1
"$HOLES" fill "$TMP/a.img" 1M:64K:3
vs -q --snapshot "$TMP/a.img" "$d/"
sleep 1.1
mkdir -p "$mnt/vol/.snapshots/1"
btrfs subvolume snapshot -r "$mnt/vol" "$mnt/vol/.snapshots/1/snapshot" > /dev/null
sleep 1.1
"$HOLES" fill "$TMP/a.img" 2M:64K:4
vs -q "$TMP/a.img" "$d/"

LIST=$("$VMSYNC" --list --json "$d") || fail "--list: exit $?"
q() { printf '%s' "$LIST" | jq -r "$1"; }
[ "$(q '[.images[].name] | join(" ")')" = "a.img b.img" ] || fail "images: $LIST"
[ "$(q '.images[0].generations | length')" -eq 4 ] || fail "a.img: not 4 generations: $LIST"
[ "$(q '.images[1].generations | length')" -eq 4 ] || fail "b.img: the snapshots hold it too: $LIST"
[ "$(q '.images[0].generations[3].path')" = "$d/a.img" ] || fail "the live copy is not last: $LIST"
q '.images[0].generations[].path' | grep -q "/.snapshots/1/snapshot/images/a.img$" ||
	fail "no snapper generation: $LIST"
q '.images[0].generations[].time' | grep -Evq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$' &&
	fail "times: $LIST"
[ "$(q '.images[0].generations | map(.time) | . == sort')" = true ] || fail "not in time order: $LIST"
[ "$(q '[.images[0].generations[].complete] | all')" = true ] || fail "not complete: $LIST"
[ "$(q '.images[0].generations[3].virtual_size')" -eq $((16 << 20)) ] || fail "virtual size: $LIST"
[ "$(q '.images[0].generations[3].allocated_bytes')" -eq $((4 << 20)) ] || fail "allocated: $LIST"
[ "$(q '.images[0].generations[3].exclusive_bytes')" -eq $K ] || fail "live exclusive: $LIST"
# Exclusive bytes as btrfs filesystem du counts them.
for i in 0 1 2 3; do
	p=$(q ".images[0].generations[$i].path")
	du=$(btrfs filesystem du --raw -s "$p" | awk 'NR == 2 { print $2 }')
	[ "$(q ".images[0].generations[$i].exclusive_bytes")" -eq "$du" ] ||
		fail "$p: exclusive $(q ".images[0].generations[$i].exclusive_bytes"), btrfs filesystem du says $du"
done

# A generation's path is a SRC.
first=$(q '.images[0].generations[0].path')
vs -q "$first" "$TMP/restored.img"
same "$TMP/a1.img" "$TMP/restored.img"

# Partial: a dirty index.
"$VMSYNC_HELPERS/idxforge" set "$d/.b.img.vmsync-index" flags=1
LIST=$("$VMSYNC" --list --json "$d")
[ "$(q ".images[1].generations[] | select(.path == \"$d/b.img\") | .complete")" = false ] ||
	fail "dirty index listed complete: $LIST"

"$VMSYNC" --list "$d" > "$TMP/table"
[ "$(grep -c '^a\.img ' "$TMP/table")" -eq 4 ] || fail "table: $(cat "$TMP/table")"
grep -q "^b\.img .* partial .*$d/b.img$" "$TMP/table" || fail "table: $(cat "$TMP/table")"
tail -1 "$TMP/table" | grep -q "$d/b.img$" || fail "table order: $(cat "$TMP/table")"
must_fail 1 "No such file" "$VMSYNC" --list "$mnt/nowhere"
echo "generations listed"
