#!/usr/bin/env bash
# Proves: --dry-run changes nothing and tells the truth.  The target's bytes,
# mtime and ctime and the index's bytes stay as they were; the operation log
# and -v list what would be written and punched (the summary in the units
# of --stats), --json reports those bytes,
# and the real run that follows does exactly that list and still trusts the
# index.  A dry run to a target that does not exist creates no file and no
# index.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires jq sha256sum fallocate

mnt=$(mkbtrfs 2G)
src=$TMP/disk.img
M=1048576
"$HOLES" make "$src" 128M 0:4M:1 100M:2M:2
tgt=$mnt/disk.img
idx=$mnt/.disk.img.vmsync-index
vs -q "$src" "$tgt"
same "$src" "$tgt"

# One sector changed, 1 MiB punched.
"$HOLES" fill "$src" 1M:4K:50
fallocate -p -o $((100 * M)) -l $M "$src"

snapshot() {	# what a dry run must not change
	sha256sum "$tgt" "$idx" | cut -d' ' -f1
	stat -c '%n %s %y %z %i' "$tgt" "$idx"
	ls -lA --time-style=full-iso "$mnt"
	stat -c '%n %y' "$mnt"
}
snapshot > "$TMP/before"

export VMSYNC_DEBUG_OPS=$TMP/dry.ops
sync_stats -n "$src" "$tgt"
echo "$STATS"
[ "$(stat_of written_bytes)" -eq 4096 ] || fail "dry run: would write $(stat_of written_bytes)"
[ "$(stat_of punched_bytes)" -eq "$M" ] || fail "dry run: would punch $(stat_of punched_bytes)"
[ "$(stat_of index)" = trusted ] || fail "dry run: index $(stat_of index)"
cat > "$TMP/expected" <<EOF
write $M 4096
punch $((100 * M)) $M
EOF
diff "$TMP/expected" "$TMP/dry.ops" || fail "dry run: wrong operations listed"
snapshot | diff "$TMP/before" - || fail "dry run changed the target or its index"

# The human forms: a summary line, and each operation with -v.
VMSYNC_DEBUG_OPS= vs -n "$src" "$tgt" > "$TMP/out"
# The summary uses the units of --stats.
grep -Fqx "$src -> $tgt (dry run): would write 4.00 KiB (4096 bytes), would punch 1.00 MiB ($M bytes)" \
	"$TMP/out" || fail "no dry-run summary: $(cat "$TMP/out")"
VMSYNC_DEBUG_OPS= vs -n -v "$src" "$tgt" > "$TMP/out" 2> /dev/null
grep -q "would write 4096 bytes at offset $M\$" "$TMP/out" || fail "-n -v: no write listed"
grep -q "would punch $M bytes at offset $((100 * M))\$" "$TMP/out" || fail "-n -v: no punch listed"
VMSYNC_DEBUG_OPS= vs -n --stats "$src" "$tgt" > "$TMP/out"
grep -q 'would write: .*(4096 bytes)' "$TMP/out" || fail "--stats: no would-write line"
snapshot | diff "$TMP/before" - || fail "dry runs changed the target or its index"

# The real run does what the dry run said, with the index still trusted.
export VMSYNC_DEBUG_OPS=$TMP/real.ops
sync_stats "$src" "$tgt"
same "$src" "$tgt"
[ "$(stat_of index)" = trusted ] || fail "the dry run spoiled the index"
diff "$TMP/dry.ops" "$TMP/real.ops" || fail "the real run differs from the dry run"

# A damaged target: the dry run compares it, lists the repair, repairs
# nothing, and leaves the index untrusted.
"$HOLES" make "$TMP/junk" 4K 0:4K:99
dd if="$TMP/junk" of="$tgt" bs=4K seek=$((2 * 256)) conv=notrunc status=none
snapshot > "$TMP/before"
export VMSYNC_DEBUG_OPS=$TMP/dry2.ops
sync_stats -n "$src" "$tgt"
[ "$(stat_of index)" = rebuilt ] || fail "damaged dry run: index $(stat_of index)"
echo "write $((2 * M)) 4096" | diff - "$TMP/dry2.ops" || fail "damaged dry run: wrong list"
snapshot | diff "$TMP/before" - || fail "damaged dry run changed something"
! cmp -s "$src" "$tgt" || fail "the dry run repaired the target"
export VMSYNC_DEBUG_OPS=$TMP/real2.ops
sync_stats "$src" "$tgt"
[ "$(stat_of index)" = rebuilt ] || fail "the dry run made the index trusted"
diff "$TMP/dry2.ops" "$TMP/real2.ops" || fail "damaged: real run differs from the dry run"
same "$src" "$tgt"

# No target yet: nothing is created, all the data would be written.
mkdir "$mnt/new"
export VMSYNC_DEBUG_OPS=$TMP/new.ops
sync_stats -n "$src" "$mnt/new/"
[ -z "$(ls -A "$mnt/new")" ] || fail "dry run created $(ls -A "$mnt/new")"
sync_stats -n "$src" "$mnt/new/named.img"
[ -z "$(ls -A "$mnt/new")" ] || fail "dry run created $(ls -A "$mnt/new")"
srcdata=$(data_ranges "$src" | awk '/^total/{print $2}')
[ "$(stat_of written_bytes)" -eq "$srcdata" ] ||
	fail "new target: would write $(stat_of written_bytes), not $srcdata"
[ "$(stat_of punched_bytes)" -eq 0 ] || fail "new target: would punch"
! grep -q punch "$TMP/new.ops" || fail "new target: punch listed"
