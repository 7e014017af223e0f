#!/usr/bin/env bash
# Proves: the server of a push gets what a local target gets.  A 1 MiB
# change pushed to a trusted target arrives as one WRITE and is written as
# one piece (not sixteen 64 KiB blocks), and the server is told to read
# the old bytes ahead (PREFETCH), which it passes to the kernel
# (POSIX_FADV_WILLNEED, logged once the kernel took it) before writing.
. "$VMSYNC_TOP/tests/functions.sh"

src=$TMP/a.img
"$HOLES" make "$src" 32M 0:8M:1 20M:4M:2
mkdir "$TMP/backup"
rvs -q "$src" "host:$TMP/backup/"
"$HOLES" fill "$src" 1M:1M:7
VMSYNC_DEBUG_OPS=$TMP/ops VMSYNC_DEBUG_HINTS=$TMP/hints rvs -q "$src" "host:$TMP/backup/"
same "$src" "$TMP/backup/a.img"
[ "$(cat "$TMP/ops")" = "write 1048576 1048576" ] || fail "server ops: $(cat "$TMP/ops")"
grep -qx "prefetch 1048576 1048576" "$TMP/hints" || fail "no read-ahead: $(cat "$TMP/hints")"
echo "one WRITE, one piece, read ahead"
