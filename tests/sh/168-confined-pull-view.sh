#!/usr/bin/env bash
# Proves: a pull through vmsync --server --root DIR (a forced command)
# reads the server's image through its point-in-time clone, kept beneath
# DIR.
#  - The first pull leaves DIR/images/.vmsync/disk.img.KEY.base (the bytes
#    pulled, a 16-byte view id); the next pull after a change replaces it
#    and uses change detection (skipped_bytes > 0, fewer bytes read).
#  - A planted .vmsync symbolic link (to a directory outside DIR) is
#    refused: exit 2, one line, nothing pulled, nothing changed outside.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires jq python3

mnt=$(mkbtrfs 1G)
root=$mnt/root
btrfs subvolume create "$root" > /dev/null
mkdir "$root/images" "$root/other" "$mnt/outside"
src=$root/images/disk.img
"$HOLES" make "$src" 32M 0:8M:1 16M:8M:2
printf '#!/bin/sh\nexec "%s" --server --root="%s"\n' "$VMSYNC" "$root" > "$TMP/fc"
chmod +x "$TMP/fc"
pull() {
	STATS=$("$VMSYNC" -e "$TMP/fc" --json --no-progress "$@")
}
view_id() {
	python3 -c 'import os, sys
print(os.getxattr(sys.argv[1], "user.vmsync.view").hex())' "$1"
}
pull host:images/disk.img "$TMP/pulled.img"
base=$(ls -d "$root/images/.vmsync/disk.img."*.base) || fail "a confined pull made no base"
same "$src" "$TMP/pulled.img"
[ -f "$base" ] || fail "a confined pull made no point-in-time clone ($base)"
cmp "$base" "$TMP/pulled.img" || fail "the base is not what was pulled"
id1=$(view_id "$base")
"$HOLES" fill "$src" 1M:64K:3
pull "host:$root/images/disk.img" "$TMP/pulled.img"
same "$src" "$TMP/pulled.img"
[ "$(view_id "$base")" != "$id1" ] || fail "the second pull did not replace the base"
cmp "$base" "$TMP/pulled.img" || fail "second pull: the base is not what was pulled"
[ "$(stat_of skipped_bytes)" -gt 0 ] ||
	fail "second pull: no change detection (skipped_bytes $(stat_of skipped_bytes))"
[ "$(stat_of read_bytes)" -lt $((16 << 20)) ] ||
	fail "second pull read $(stat_of read_bytes) bytes"

# A planted .vmsync link.
cp --sparse=always "$src" "$root/other/disk.img"
ln -s "$mnt/outside" "$root/other/.vmsync"
must_fail 2 "^vmsync: host: other/\.vmsync: state directory is a symbolic link; refusing it$" \
	"$VMSYNC" -e "$TMP/fc" host:other/disk.img "$TMP/other.img"
[ ! -e "$TMP/other.img" ] || fail "a refused pull made a file"
[ -z "$(ls -A "$mnt/outside")" ] || fail "a pull wrote outside DIR: $(ls -A "$mnt/outside")"
