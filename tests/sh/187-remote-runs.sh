#!/usr/bin/env bash
# Proves: the server of a push gets what a local target gets.  A 1 MiB
# change pushed to a trusted target arrives as one WRITE and is written as
# one piece (not sixteen 64 KiB blocks).  With an index from before sector
# records, the server is told to read the old bytes ahead (PREFETCH), which
# it passes to the kernel (POSIX_FADV_WILLNEED, logged once the kernel took
# it) before writing.  That run leaves the changed blocks' sector records,
# so the next change there is written without reading the old bytes.
. "$VMSYNC_TOP/tests/functions.sh"

src=$TMP/a.img
idx=$TMP/backup/.a.img.vmsync-index
"$HOLES" make "$src" 32M 0:8M:1 20M:4M:2
mkdir "$TMP/backup"
rvs -q "$src" "host:$TMP/backup/"
"$VMSYNC_HELPERS/idxforge" downgrade "$idx"
"$HOLES" fill "$src" 1M:1M:7
VMSYNC_DEBUG_OPS=$TMP/ops VMSYNC_DEBUG_HINTS=$TMP/hints rvs -q "$src" "host:$TMP/backup/"
same "$src" "$TMP/backup/a.img"
[ "$(cat "$TMP/ops")" = "write 1048576 1048576" ] || fail "server ops: $(cat "$TMP/ops")"
grep -qx "prefetch 1048576 1048576" "$TMP/hints" || fail "no read-ahead: $(cat "$TMP/hints")"
echo "one WRITE, one piece, read ahead"

[ "$("$VMSYNC_HELPERS/idxforge" get "$idx" version)" = "$("$VMSYNC_HELPERS/idxforge" version)" ] ||
	fail "the index was not migrated"
"$HOLES" fill "$src" 1M:1M:9
: > "$TMP/ops"
: > "$TMP/hints"
STATS=$(VMSYNC_DEBUG_OPS=$TMP/ops VMSYNC_DEBUG_HINTS=$TMP/hints rvs --json --no-progress "$src" "host:$TMP/backup/")
same "$src" "$TMP/backup/a.img"
[ "$(cat "$TMP/ops")" = "write 1048576 1048576" ] || fail "server ops, records: $(cat "$TMP/ops")"
! grep -q "^prefetch" "$TMP/hints" || fail "read ahead what the records say: $(cat "$TMP/hints")"
[ "$(stat_of target_read_bytes)" -eq 0 ] || fail "read $(stat_of target_read_bytes) bytes of the target"
[ "$(stat_of written_bytes)" -eq 1048576 ] || fail "wrote $(stat_of written_bytes) bytes"
echo "sector records: no read of the old bytes"
