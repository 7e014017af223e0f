#!/usr/bin/env bash
# Proves: several SRC go into a directory as DEST/basename each, with one
# JSON entry per image and totals that add up; a single SRC may name the
# target file (any name, index beside it as .NAME.vmsync-index); --block-size
# 4K and 1M give the same target (content and allocation); a different
# --block-size on an existing target rebuilds the index and writes nothing
# when the target is equal, and a run without -B keeps the index's size.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires jq

mnt=$(mkbtrfs 2G)
M=1048576
mkdir "$TMP/in" "$mnt/backup" "$mnt/named"
"$HOLES" make "$TMP/in/a.img" 64M 0:1M:1 33M:100K:2
"$HOLES" make "$TMP/in/b.img" 32M 5M:3M:3
"$HOLES" make "$TMP/in/c.img" $((16 * M + 512)) 16M:512:4 1M:5000:5
export VMSYNC_DEBUG_OPS=$TMP/ops

# Several sources into a directory.
sync_stats "$TMP/in/a.img" "$TMP/in/b.img" "$TMP/in/c.img" "$mnt/backup"
[ "$(printf '%s' "$STATS" | jq '.images | length')" -eq 3 ] || fail "not 3 images in JSON"
[ "$(printf '%s' "$STATS" | jq .exit_code)" -eq 0 ] || fail "exit_code"
for n in a b c; do
	same "$TMP/in/$n.img" "$mnt/backup/$n.img"
	diff <(data_ranges "$TMP/in/$n.img") <(data_ranges "$mnt/backup/$n.img") ||
		fail "$n: allocation differs"
	[ -f "$mnt/backup/.$n.img.vmsync-index" ] || fail "$n: no index"
	printf '%s' "$STATS" | jq -e --arg t "$mnt/backup/$n.img" \
		'.images[] | select(.target == $t) | .status == 0' > /dev/null ||
		fail "$n: no JSON entry with status 0"
done
sum=$(printf '%s' "$STATS" | jq '[.images[].written_bytes] | add')
[ "$(printf '%s' "$STATS" | jq .totals.written_bytes)" -eq "$sum" ] || fail "totals do not add up"
[ "$(ls -A "$mnt/backup" | wc -l)" -eq 6 ] || fail "stray files: $(ls -A "$mnt/backup")"
: > "$TMP/ops"
sync_stats "$TMP/in/a.img" "$TMP/in/b.img" "$TMP/in/c.img" "$mnt/backup/"
[ ! -s "$TMP/ops" ] || fail "second run of three did: $(cat "$TMP/ops")"
[ "$(printf '%s' "$STATS" | jq -r '[.images[].index] | unique | join(",")')" = trusted ] ||
	fail "second run of three: not all trusted"

# One source, naming the target file.
sync_stats "$TMP/in/a.img" "$mnt/named/monday.raw"
same "$TMP/in/a.img" "$mnt/named/monday.raw"
[ -f "$mnt/named/.monday.raw.vmsync-index" ] || fail "named: no index beside it"
[ "$(ls -A "$mnt/named" | wc -l)" -eq 2 ] || fail "named: stray files: $(ls -A "$mnt/named")"
: > "$TMP/ops"
sync_stats "$TMP/in/a.img" "$mnt/named/monday.raw"
[ "$(stat_of index)" = trusted ] || fail "named: index not trusted"
[ ! -s "$TMP/ops" ] || fail "named: second run did: $(cat "$TMP/ops")"

# Block sizes: the same result whatever the block size.
src=$TMP/in/a.img
"$HOLES" fill "$src" 200K:8K:6 $((M + 65536)):4K:7	# odd spots in 1 MiB blocks
for bs in 4K 1M; do
	sync_stats -B $bs "$src" "$mnt/bs$bs.img"
	same "$src" "$mnt/bs$bs.img"
	diff <(data_ranges "$src") <(data_ranges "$mnt/bs$bs.img") ||
		fail "-B $bs: allocation differs"
done
cmp "$mnt/bs4K.img" "$mnt/bs1M.img" || fail "4K and 1M targets differ"

# A different block size on an existing target: index rebuilt, nothing
# written; then a run without -B keeps using it.
tgt=$mnt/bs4K.img
: > "$TMP/ops"
sync_stats -B 1M "$src" "$tgt"
[ "$(stat_of index)" = rebuilt ] || fail "-B 4K -> 1M: index $(stat_of index)"
[ ! -s "$TMP/ops" ] || fail "-B 4K -> 1M: did $(cat "$TMP/ops")"
[ "$(stat_of written_bytes)" -eq 0 ] || fail "-B 4K -> 1M: wrote"
[ "$(stat_of read_bytes)" -ge "$(data_ranges "$src" | awk '/^total/{print $2}')" ] ||
	fail "-B 1M read less than the data"
sync_stats "$src" "$tgt"
[ "$(stat_of index)" = trusted ] || fail "no -B after -B 1M: index $(stat_of index)"
[ ! -s "$TMP/ops" ] || fail "no -B after -B 1M: did $(cat "$TMP/ops")"
# The index is now one entry per MiB: 4 KiB header, 64 entries of 16
# bytes, and at the sector records' offset 64 records of 8 + 256 * 8 bytes.
ix=$mnt/.bs4K.img.vmsync-index IDX=$VMSYNC_HELPERS/idxforge
[ "$(stat -c %s "$ix")" -eq $(($("$IDX" get "$ix" sectors) + 64 * 8 * 257)) ] ||
	fail "index size $(stat -c %s "$ix") for 1 MiB blocks"
sync_stats -B 64K "$src" "$tgt"
[ "$(stat_of index)" = rebuilt ] || fail "-B 1M -> 64K: index $(stat_of index)"
[ ! -s "$TMP/ops" ] || fail "-B 1M -> 64K: did $(cat "$TMP/ops")"
sync_stats -B 64K "$src" "$tgt"
[ "$(stat_of index)" = trusted ] || fail "-B 64K again: index $(stat_of index)"
same "$src" "$tgt"

# A change lands the same way with each block size.
"$HOLES" fill "$src" $((33 * M + 70000)):10:8
for bs in 4K 1M; do
	: > "$TMP/ops"
	sync_stats -B $bs "$src" "$mnt/bs$bs.img"
	same "$src" "$mnt/bs$bs.img"
	[ "$(stat_of written_bytes)" -eq 4096 ] || fail "-B $bs: change wrote $(stat_of written_bytes)"
done
