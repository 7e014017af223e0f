#!/usr/bin/env bash
# Proves: a second sync of an unchanged source writes nothing.  The operation
# log stays empty, written_bytes and punched_bytes are 0, the index is
# trusted so the target is not read at all (target_read_bytes 0), the source
# is read only where it holds data (read_bytes equals its allocation, never
# its holes), and the target's extents on btrfs are the very same ones.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires jq filefrag

mnt=$(mkbtrfs 2G)
src=$TMP/disk.img
# Data ranges on 64 KiB boundaries, so reading whole blocks reads exactly
# the allocated bytes.
"$HOLES" make "$src" 512M 0:1M:1 100M:3M:2 300M:64K:3 400M:192K:4 \
	$((512 * 1048576 - 65536)):64K:5
mkdir "$mnt/backup"
tgt=$mnt/backup/disk.img
export VMSYNC_DEBUG_OPS=$TMP/ops
srcdata=$(data_ranges "$src" | awk '/^total/{print $2}')

# First run: writes the data once, punches nothing (the target is new).
sync_stats "$src" "$mnt/backup/"
same "$src" "$tgt"
[ "$(stat_of index)" = new ] || fail "first run index state: $(stat_of index)"
! grep -q '^punch' "$TMP/ops" || fail "first run punched a new target"
[ "$(awk '$1 == "write" {n += $3} END {print n + 0}' "$TMP/ops")" -eq "$srcdata" ] ||
	fail "first run did not write exactly the source's data"
sync -f "$tgt"
filefrag -v "$tgt" | tail -n +3 > "$TMP/extents.before"
[ -s "$TMP/extents.before" ] || fail "filefrag shows no extents"

# Second run: nothing to do.
: > "$TMP/ops"
sync_stats "$src" "$mnt/backup/"
echo "$STATS"
[ ! -s "$TMP/ops" ] || { cat "$TMP/ops"; fail "unchanged run logged operations"; }
[ "$(stat_of written_bytes)" -eq 0 ] || fail "written_bytes not 0"
[ "$(stat_of punched_bytes)" -eq 0 ] || fail "punched_bytes not 0"
[ "$(stat_of index)" = trusted ] || fail "index not trusted: $(stat_of index)"
[ "$(stat_of target_read_bytes)" -eq 0 ] || fail "read the target"
[ "$(stat_of data_bytes)" -eq "$srcdata" ] || fail "data_bytes"
[ "$(stat_of read_bytes)" -eq "$srcdata" ] ||
	fail "read $(stat_of read_bytes) bytes of source, it holds $srcdata"
[ "$(stat_of unchanged_bytes)" -eq "$srcdata" ] || fail "unchanged_bytes"
[ "$(printf '%s' "$STATS" | jq -r .exit_code)" -eq 0 ] || fail "exit_code"
same "$src" "$tgt"
sync -f "$tgt"
filefrag -v "$tgt" | tail -n +3 > "$TMP/extents.after"
diff "$TMP/extents.before" "$TMP/extents.after" ||
	fail "the target's extents changed in an unchanged run"
diff <(data_ranges "$src") <(data_ranges "$tgt") || fail "allocation differs"

# A third run, not quiet: still nothing, and nothing on stderr.
vs --no-progress "$src" "$tgt" 2> "$TMP/err"
[ ! -s "$TMP/ops" ] || fail "third run logged operations"
[ ! -s "$TMP/err" ] || fail "unexpected stderr: $(cat "$TMP/err")"
