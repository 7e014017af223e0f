#!/usr/bin/env bash
# Proves: several SRC go into DEST/basename each; a single SRC may name the
# target file; block sizes 4K, 64K and 4M give equal results; asking for a
# different --block-size on an existing target rebuilds the index without
# writing; without --block-size the index's own block size is kept.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires qemu-img jq

mnt=$(mkbtrfs 2G)
mkdir "$mnt/b"
for n in a b c; do
	s=$(printf %d "'$n")
	"$HOLES" make "$TMP/$n.img" 96M 1M:3M:$s 50M:5000:$((s + 1)) 90M:6M:$((s + 2))
done
STATS=$("$VMSYNC" --json "$TMP/a.img" "$TMP/b.img" "$TMP/c.img" "$mnt/b")
[ "$(printf '%s' "$STATS" | jq '.images | length')" -eq 3 ] || fail "images in JSON"
[ "$(printf '%s' "$STATS" | jq '.exit_code')" -eq 0 ] || fail "exit_code in JSON"
for n in a b c; do same "$TMP/$n.img" "$mnt/b/$n.img"; done

vs -q "$TMP/a.img" "$mnt/named-target.raw"
same "$TMP/a.img" "$mnt/named-target.raw"
[ -f "$mnt/.named-target.raw.vmsync-index" ] || fail "index of a named target"

for bs in 4K 64K 4M; do
	vs -q -B $bs "$TMP/b.img" "$mnt/bs-$bs.img"
	same "$TMP/b.img" "$mnt/bs-$bs.img"
done
"$HOLES" fill "$TMP/b.img" 1M:1:77
sync_stats -B 4K "$TMP/b.img" "$mnt/bs-4K.img"
[ "$(stat_of written_bytes)" -eq 4096 ] || fail "4K blocks: wrote $(stat_of written_bytes)"
sync_stats "$TMP/b.img" "$mnt/bs-4K.img"
[ "$(stat_of index)" = trusted ] || fail "index block size not kept"
sync_stats -B 1M "$TMP/b.img" "$mnt/bs-4K.img"
[ "$(stat_of index)" = rebuilt ] || fail "new block size did not rebuild"
[ "$(stat_of written_bytes)" -eq 0 ] || fail "rebuild wrote"
sync_stats -B 1M "$TMP/b.img" "$mnt/bs-4K.img"
[ "$(stat_of index)" = trusted ] || fail "1M index not trusted"
same "$TMP/b.img" "$mnt/bs-4K.img"
