#!/usr/bin/env bash
# Proves: an archive damaged while it is being imported (after its headers
# were checked) fails that image's sync like any source read error: one
# line naming the archive and the entry, exit 2, and the target is left
# as an interrupted sync leaves it (zstd finds some damage only at the
# frame's checksum, after the bytes were written): the next run does not trust its index
# ("rebuilt"), ends equal to the archive's file, and the run after that
# writes nothing.
. "$VMSYNC_TOP/tests/functions.sh"
requires zstd tar jq

cd "$TMP" || fail "cd $TMP"
M=1048576
head -c $((96 * M)) /dev/urandom > data
"$HOLES" make disk.img 256M 0:32M:1 100M:32M:2 200M:32M:3
dd if=data of=disk.img bs=1M count=96 conv=notrunc,sparse 2>/dev/null
tar --sparse -cf - disk.img | zstd -q -1 > gen1.tar.zst
vs gen1.tar.zst d/
# The next generation: every data block changed.
head -c $((96 * M)) /dev/urandom > data
dd if=data of=disk.img bs=1M count=96 conv=notrunc 2>/dev/null
tar --sparse -cf - disk.img | zstd -q -1 > gen2.tar.zst
cp gen2.tar.zst good.tar.zst
size=$(stat -c %s gen2.tar.zst)
export VMSYNC_DEBUG_OPS=$TMP/ops

# damage: past the headers, in the middle of the data.
damage() {
	head -c $M /dev/urandom |
		dd of=gen2.tar.zst bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
}
spoiled_import good.tar.zst gen2.tar.zst gen1.tar.zst damage
spoiled_failed "^vmsync: gen2.tar.zst: entry 'disk.img' at offset 0: "

cp good.tar.zst gen2.tar.zst
sync_stats gen2.tar.zst d/
[ "$(stat_of index)" = rebuilt ] || fail "after the failure: index $(stat_of index)"
same disk.img d/disk.img
sync_stats gen2.tar.zst d/
[ "$(stat_of index)" = trusted ] || fail "then: index $(stat_of index)"
[ "$(stat_of written_bytes)" -eq 0 ] || fail "then: wrote bytes"
