#!/usr/bin/env bash
# Proves: the index's sector records (version 4) tell which 4 KiB sectors
# of a changed block differ, so a run with a trusted index writes only
# those without reading the old block, locally and on a push's server.
# A damaged record costs one read of its block, never a wrong byte.  An
# index from before the records (version 3) is trusted, read once and
# rewritten as version 4; a run that rebuilt its index, on either side,
# leaves records behind.  --verify checks the records against the bytes:
# one that holds for its entry but lies about a sector is reported.
. "$VMSYNC_TOP/tests/functions.sh"

IDX=$VMSYNC_HELPERS/idxforge
M=1048576
src=$TMP/a.img
tgt=$TMP/b/a.img
idx=$TMP/b/.a.img.vmsync-index
mkdir "$TMP/b"
"$HOLES" make "$src" 64M 0:32M:1 40M:8M:2
vs -q "$src" "$TMP/b/"
[ "$("$IDX" get "$idx" version)" -eq 4 ] || fail "index version $("$IDX" get "$idx" version)"
soff=$("$IDX" get "$idx" sectors)

# Four sectors in four blocks, and a sector of data made zero.
change() {	# change PATTERN [B]: one sector in each of blocks 1, 5, 77, 300 (+B)
	local b=${2:-0}
	"$HOLES" fill "$src" $(((1 + b) * 65536 + 8192)):4K:$1 \
		$(((5 + b) * 65536)):4K:$1 $(((77 + b) * 65536 + 61440)):4K:$1 \
		$(((300 + b) * 65536 + 4096)):4K:$1
}
expect() {	# expect READ WRITTEN INDEX
	same "$src" "$tgt"
	[ "$(stat_of target_read_bytes)" -eq "$1" ] ||
		fail "read $(stat_of target_read_bytes) bytes of the target, not $1"
	[ "$(stat_of written_bytes)" -eq "$2" ] ||
		fail "wrote $(stat_of written_bytes) bytes, not $2"
	[ "$(stat_of index)" = "$3" ] || fail "index $(stat_of index), not $3"
}
change 7
sync_stats "$src" "$TMP/b/"
expect 0 $((4 * 4096)) trusted
zoff=$((9 * 65536 + 4096))
dd if=/dev/zero of="$src" bs=4096 seek=$((zoff / 4096)) count=1 conv=notrunc status=none
sync_stats "$src" "$TMP/b/"
expect 0 0 trusted
[ "$(stat_of punched_bytes)" -eq 4096 ] || fail "punched $(stat_of punched_bytes)"
data_ranges "$tgt" | awk -v o=$zoff '$1 != "total" && $1 <= o && o < $1 + $2 { bad = 1 }
	END { exit bad }' || fail "the zeroed sector holds data on the target"
echo "local: changed sectors written, nothing read"

# A damaged record (block 77's) costs a read of that block only.
printf 'Z' | dd of="$idx" bs=1 seek=$((soff + 77 * 136 + 20)) conv=notrunc status=none
change 8
sync_stats "$src" "$TMP/b/"
expect 65536 $((4 * 4096)) trusted
change 9
sync_stats "$src" "$TMP/b/"
expect 0 $((4 * 4096)) trusted
echo "damaged record: one block read, then rewritten"

# An index of version 3 is trusted and migrated.
"$IDX" downgrade "$idx"
[ "$("$IDX" get "$idx" version)" -eq 3 ] || fail "downgrade"
change 10
sync_stats "$src" "$TMP/b/"
expect $((4 * 65536)) $((4 * 4096)) trusted
[ "$("$IDX" get "$idx" version)" -eq 4 ] || fail "not migrated: version $("$IDX" get "$idx" version)"
change 11
sync_stats "$src" "$TMP/b/"
expect 0 $((4 * 4096)) trusted
echo "version 3: read once, then migrated"

# An image that grows a little keeps its records where they are.
truncate -s 65M "$src"
sync_stats "$src" "$TMP/b/"
same "$src" "$tgt"
[ "$("$IDX" get "$idx" sectors)" -eq "$soff" ] || fail "records moved for a small growth"
change 12
sync_stats "$src" "$TMP/b/"
expect 0 $((4 * 4096)) trusted

# A target changed behind vmsync's back: rebuilt, and records made.
touch "$tgt"
change 13
sync_stats "$src" "$TMP/b/"
same "$src" "$tgt"
[ "$(stat_of index)" = rebuilt ] || fail "index $(stat_of index) after touch"
change 14
sync_stats "$src" "$TMP/b/"
expect 0 $((4 * 4096)) trusted
echo "growth and rebuild keep records"

vs --verify "$tgt" > /dev/null || fail "--verify of a good backup"
"$IDX" resector "$idx" 300 3
must_fail 7 "offset $((300 * 65536))" vs --verify "$tgt"
echo "--verify: a lying sector record is found"

# A push whose server hashes its target (index untrusted) makes records
# as it hashes; the next push reads nothing of the target, also in blocks
# the first did not write.
mkdir "$TMP/r"
rvs -q "$src" "host:$TMP/r/"
touch "$TMP/r/a.img"
change 15
STATS=$(rvs --json --no-progress "$src" "host:$TMP/r/")
same "$src" "$TMP/r/a.img"
change 16 1
STATS=$(rvs --json --no-progress "$src" "host:$TMP/r/")
same "$src" "$TMP/r/a.img"
[ "$(stat_of target_read_bytes)" -eq 0 ] || fail "push read $(stat_of target_read_bytes) bytes of the target"
[ "$(stat_of written_bytes)" -eq $((4 * 4096)) ] || fail "push wrote $(stat_of written_bytes)"
echo "push: records from the server's own hashing"
