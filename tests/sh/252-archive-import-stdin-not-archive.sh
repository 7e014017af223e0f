#!/usr/bin/env bash
# Proves: a stream on standard input that is not an archive (a disk image
# piped by mistake: cat vm.img | vmsync - DIR/) is refused as soon as its
# first bytes show it, with the line a file of the same bytes gets
# (exit 2, naming "-"), not after all of it was copied into DIR: here 64
# MiB into a directory with room for 32, which failed for want of space
# (exit 3).  Archives longer than what is looked at first (tar, gzip,
# zstd and xz, 12 MiB of random data) still import through a pipe.
. "$VMSYNC_TOP/tests/functions.sh"
requires_root
requires_ext4
requires gzip zstd xz tar

cd "$TMP" || fail "cd $TMP"
M=$((1 << 20))
mnt=$(mkext4 40M)
mkdir "$mnt/d"
head -c $((64 * M)) /dev/urandom > vm.img
head -c $((12 * M)) vm.img > disk.img
export TMPDIR=$TMP/spool
mkdir "$TMPDIR"

# Not an archive: refused as a file of the same bytes is.
head -c $((16 * M)) vm.img > notarchive.tar
want=$("$VMSYNC" notarchive.tar "$mnt/d/" 2>&1 || true)
want=${want#vmsync: notarchive.tar: }
{ cat vm.img || true; } | must_fail 2 "^vmsync: -: " "$VMSYNC" - "$mnt/d/"
[ "$(cat "$TMP/stderr")" = "vmsync: -: $want" ] ||
	fail "stderr: $(cat "$TMP/stderr"), want: vmsync: -: $want"
[ -z "$(ls -A "$mnt/d")" ] || fail "left in $mnt/d: $(ls -A "$mnt/d")"

# Archives longer than that still pass.
tar -cf disk.tar disk.img
gzip -1 -c disk.tar > disk.tar.gz
zstd -q -1 -c disk.tar > disk.tar.zst
xz -0 -T1 -c disk.tar > disk.tar.xz
for a in disk.tar disk.tar.gz disk.tar.zst disk.tar.xz; do
	rm -f "$mnt/d/disk.img" "$mnt/d/.disk.img.vmsync-index"
	cat "$a" | "$VMSYNC" - "$mnt/d/" || fail "$a through a pipe: exit $?"
	cmp "$mnt/d/disk.img" disk.img || fail "$a: the image differs"
done
echo "ok"
