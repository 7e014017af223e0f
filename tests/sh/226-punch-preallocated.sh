#!/usr/bin/env bash
# Proves: a target preallocated by another program (fallocate, as
# qemu-img's preallocation=falloc or a VM disk created fully allocated
# leaves it) keeps no space where the source has a hole, on ext4 and on
# btrfs, synced locally and pushed.  Its unwritten extents read as zeros,
# so SEEK_DATA called them holes: nothing was punched, a restore of 4 MiB
# of data into a 64 MiB preallocated image left it all allocated, and
# --verify's answer depended on whether those ranges were in the page
# cache (exit 7 after reading the file, 0 after the cache was dropped).
#  - After the sync the target equals the source, allocates no more than
#    it, and --verify passes, also after the whole target was read.
#  - --dry-run punches nothing.
#  - Data another program just wrote into a preallocated file, still in
#    the page cache, is not punched: FIEMAP without its sync flag showed
#    those extents unwritten (ext4, before writeback), and an incremental
#    archive applied onto such a copy of its base (whose digest matched)
#    left only the changed sectors, the rest of the base zeros.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires_ext4
requires fallocate

cd "$TMP" || fail "cd $TMP"
"$HOLES" make src.img 64M 0:1M:1 10M:2M:2 40M:1M:3
src_alloc=$(alloc src.img)
# An incremental archive from src.img to new/src.img.
mkdir new
cp --sparse=always src.img new/src.img
"$HOLES" fill new/src.img 20M:1M:4
vs -q --since src.img new/src.img inc.tar

# prealloc FILE: FILE as a 64 MiB image allocated everywhere, unwritten.
prealloc() {
	rm -f "$1"
	fallocate -l 64M "$1" || fail "fallocate $1"
	[ "$(alloc "$1")" -ge $((64 << 20)) ] || fail "$1: not preallocated"
}

# punched FS TGT [SLACK]: TGT equals src.img with no more space than it
# (and SLACK bytes).
punched() {
	same src.img "$2"
	[ "$(alloc "$2")" -le $((src_alloc + ${3:-0})) ] ||
		fail "$1: $2 holds $(alloc "$2") bytes, the source $src_alloc"
	vs --verify "$2" > /dev/null || fail "$1: verify exit $?"
	cat "$2" > /dev/null		# its pages now in the cache
	vs --verify "$2" > /dev/null || fail "$1: verify after a read, exit $?"
}

for fs in ext4 btrfs; do
	if [ "$fs" = ext4 ]; then mnt=$(mkext4 512M); else mnt=$(mkbtrfs 512M); fi
	mkdir "$mnt/local" "$mnt/pushed"

	prealloc "$mnt/local/src.img"
	vs -q --dry-run src.img "$mnt/local/" || fail "$fs: dry run: exit $?"
	[ "$(alloc "$mnt/local/src.img")" -ge $((64 << 20)) ] ||
		fail "$fs: --dry-run punched"
	vs -q src.img "$mnt/local/" || fail "$fs: local sync: exit $?"
	punched "$fs" "$mnt/local/src.img"

	prealloc "$mnt/pushed/src.img"
	rvs -q src.img "localhost:$mnt/pushed/" || fail "$fs: push: exit $?"
	punched "$fs (pushed)" "$mnt/pushed/src.img"

	# The base written into a preallocated file just before the apply.
	mkdir "$mnt/apply"
	prealloc "$mnt/apply/src.img"
	dd if=src.img of="$mnt/apply/src.img" conv=notrunc,sparse bs=64K \
		status=none
	vs -q inc.tar "$mnt/apply/" || fail "$fs: apply: exit $?"
	same "$mnt/apply/src.img" new/src.img
	# And a sync onto such a file.
	prealloc "$mnt/local/src.img"
	dd if=src.img of="$mnt/local/src.img" conv=notrunc,sparse bs=64K \
		status=none
	vs -q src.img "$mnt/local/" || fail "$fs: sync over fresh data: exit $?"
	# (ext4 keeps the extent tree block the split extents needed.)
	punched "$fs (fresh data)" "$mnt/local/src.img" 16384
done
echo "ok"
