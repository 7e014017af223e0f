#!/usr/bin/env bash
# Proves: the source's pages are dropped from the page cache after they are
# read (posix_fadvise DONTNEED), so a nightly backup does not evict the host's
# cache: the freshly written (hence cached) source data is no longer resident
# after a sync, while an untouched control file stays cached.
. "$VMSYNC_TOP/tests/functions.sh"
requires fincore

src=$TMP/disk.img
# Written just now, so the data pages (and only they: never read the holes)
# are in the page cache.
"$HOLES" make "$src" 256M 0:8M:1 100M:8M:2
"$HOLES" make "$TMP/control" 16M 0:16M:3
resident() { fincore --bytes --noheadings --output RES "$1"; }
before=$(resident "$src")
[ "$before" -ge $((16 << 20)) ] || skip "page cache does not keep the file (RES $before)"

vs -q "$src" "$TMP/backup.img"
after=$(resident "$src")
echo "resident before $before, after $after"
[ "$after" -le $((1 << 20)) ] || fail "source still has $after bytes in the page cache"
[ "$(resident "$TMP/control")" -ge $((8 << 20)) ] || skip "control file evicted: memory pressure"
same "$src" "$TMP/backup.img"
