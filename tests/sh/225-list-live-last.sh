#!/usr/bin/env bash
# Proves: vmsync --list puts the live copy last, also when a snapshot
# holds the same generation and the snapshot directory sorts after it.
# The usual backup host layout: a subvolume /backup/images, snapshots in
# --snapshot-dir=/backup/snapshots.  Right after a run with --snapshot,
# the newest snapshot's copy has the live copy's index, so the same time;
# the tie went by path, and "/backup/images/..." sorted first, so the
# live copy was listed before the snapshot (JSON and table, local and
# through vmsync --server).
#  - After two nightly runs: three generations, in time order, the live
#    copy last (JSON, table, and --list host:DIR).
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires jq

mnt=$(mkbtrfs 1G)
btrfs subvolume create "$mnt/images" > /dev/null
mkdir "$mnt/snapshots"
src=$TMP/web.img
"$HOLES" make "$src" 16M 0:4M:1
vs -q --snapshot --snapshot-dir="$mnt/snapshots" "$src" "$mnt/images/"
sleep 1.1
"$HOLES" fill "$src" 1M:64K:2
vs -q --snapshot --snapshot-dir="$mnt/snapshots" "$src" "$mnt/images/"

check() {	# check WHAT LIVE-PATH LIST-ARGS...
	local what=$1 live=$2 list
	shift 2
	list=$("$VMSYNC" --list --json --snapshot-dir="$mnt/snapshots" "$@") ||
		fail "$what: --list: exit $?"
	[ "$(printf '%s' "$list" | jq '.images[0].generations | length')" -eq 3 ] ||
		fail "$what: not 3 generations: $list"
	[ "$(printf '%s' "$list" | jq -r '.images[0].generations | map(.time) | . == sort')" = true ] ||
		fail "$what: not in time order: $list"
	[ "$(printf '%s' "$list" | jq -r '.images[0].generations[-1].path')" = "$live" ] ||
		fail "$what: the live copy is not last: $list"
	"$VMSYNC" --list --snapshot-dir="$mnt/snapshots" "$@" > "$TMP/table"
	tail -1 "$TMP/table" | grep -q " $live$" ||
		fail "$what: table: the live copy is not last: $(cat "$TMP/table")"
}
check local "$mnt/images/web.img" "$mnt/images"
LOCALSH=$VMSYNC_TOP/tests/helpers/localsh
check remote "host:$mnt/images/web.img" -e "$LOCALSH" \
	--remote-vmsync "$VMSYNC" "host:$mnt/images"
echo "the live copy is listed last"
