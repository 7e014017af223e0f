#!/usr/bin/env bash
# Proves: an uncompressed archive cut short while it is imported (after
# its headers and data were checked) fails that image's sync: one line
# naming the archive and the entry, exit 2, the index left dirty.  The
# bytes past the new end once read as zeros, and the backup of the
# previous generation was overwritten with them, its index trusted, with
# exit 0.  The next run of the whole archive does not trust the index
# ("rebuilt") and ends equal to the archive's file.
. "$VMSYNC_TOP/tests/functions.sh"
requires tar jq

cd "$TMP" || fail "cd $TMP"
M=1048576
head -c $((128 * M)) /dev/urandom > disk.img
tar -cf gen1.tar disk.img
vs gen1.tar d/
same disk.img d/disk.img
# The next generation: every block changed.
head -c $((128 * M)) /dev/urandom > disk.img
tar -cf good.tar disk.img
export VMSYNC_DEBUG_OPS=$TMP/ops

spoiled_import good.tar gen2.tar gen1.tar truncate -s $((64 * M)) gen2.tar
spoiled_failed "^vmsync: gen2.tar: entry 'disk.img' at offset 0: .*cut"

cp good.tar gen2.tar
sync_stats gen2.tar d/
[ "$(stat_of index)" = rebuilt ] || fail "after the failure: index $(stat_of index)"
same disk.img d/disk.img
