#!/usr/bin/env bash
# Proves: --snapshot works through vmsync --server --root DIR (a forced
# command) and never reaches above DIR.
#  - DIR a subvolume: a push with --snapshot snapshots DIR into
#    DIR/.vmsync-snapshots; a target in a subvolume beneath DIR snapshots
#    that one; a relative --snapshot-dir is inside the subvolume, an
#    absolute one under DIR is used as it is; each snapshot is read-only
#    and holds the image as pushed.
#  - A --snapshot-dir outside DIR (absolute, or climbing with "..") is
#    refused: exit 1, one line, nothing made outside.
#  - DIR a plain directory whose subvolume is above it: --snapshot is
#    refused before anything is written (exit 1, one line, no target), and
#    nothing is made above DIR.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs

mnt=$(mkbtrfs 1G)
root=$mnt/root
btrfs subvolume create "$root" > /dev/null
mkdir "$root/images" "$mnt/outside"
btrfs subvolume create "$root/vol" > /dev/null
src=$TMP/disk.img
"$HOLES" make "$src" 16M 0:1M:1 8M:1M:2

forced() {	# forced NAME DIR: a forced command confined to DIR
	printf '#!/bin/sh\nexec "%s" --server --root="%s"\n' "$VMSYNC" "$2" > "$TMP/$1"
	chmod +x "$TMP/$1"
}
forced fc "$root"
fvs() {
	"$VMSYNC" -e "$TMP/fc" "$@"
}
# one DIR: DIR holds exactly one snapshot, read-only, holding $src as FILE
one() {
	local s
	[ "$(ls -A "$1" | wc -l)" -eq 1 ] || fail "$1: $(ls -A "$1" | wc -l) entries, not one snapshot"
	s=$(echo "$1"/*)
	[ "$(btrfs property get -ts "$s" ro)" = "ro=true" ] || fail "$s is not read-only"
	same "$src" "$s/$2"
}

fvs -q --snapshot "$src" "host:images/"
same "$src" "$root/images/disk.img"
one "$root/.vmsync-snapshots" images/disk.img
fvs -q --snapshot "$src" "host:$root/vol/"
one "$root/vol/.vmsync-snapshots" disk.img
fvs -q --snapshot --snapshot-dir rel "$src" "host:vol/"
one "$root/vol/rel" disk.img
fvs -q --snapshot --snapshot-dir "$root/abs" "$src" "host:vol/b.img"
one "$root/abs" b.img

# --snapshot-dir outside DIR.
must_fail 1 "^vmsync: host: .*outside the directory this server is confined to$" \
	fvs -q --snapshot --snapshot-dir "$mnt/snaps" "$src" "host:vol/"
must_fail 1 "^vmsync: host: .*outside the directory this server is confined to$" \
	fvs -q --snapshot --snapshot-dir ../../outside "$src" "host:vol/"
[ ! -e "$mnt/snaps" ] || fail "a snapshot directory was made outside DIR"
[ -z "$(ls -A "$mnt/outside")" ] || fail "something was made outside DIR"

# DIR whose subvolume is above it.
mkdir -p "$mnt/plain/images"
forced fc2 "$mnt/plain"
must_fail 1 "^vmsync: host: images/disk.img: --snapshot: the target's btrfs subvolume is above the directory this server is confined to$" \
	"$VMSYNC" -e "$TMP/fc2" --snapshot "$src" "host:images/"
[ -z "$(ls -A "$mnt/plain/images")" ] || fail "a refused --snapshot left $(ls -A "$mnt/plain/images")"
[ ! -e "$mnt/.vmsync-snapshots" ] || fail "a snapshot directory was made above DIR"
