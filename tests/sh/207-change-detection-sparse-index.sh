#!/usr/bin/env bash
# Proves: with change detection, a run reads the index entries of only the
# blocks it may change, not those of the whole image.  A 16 GiB sparse
# image holds 64 KiB of data in each 256 MiB window; one piece changes.
# With the index's pages dropped, the run leaves less than 1 MiB of the
# index in the page cache (fincore), where reading every window's entries
# would bring in the whole 4 MiB entry area, and the target still equals
# the source.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires jq fincore qemu-img

mnt=$(mkbtrfs 1G)
M=$((1024 * 1024))
W=$((256 * M))
btrfs subvolume create "$mnt/images" > /dev/null
mkdir "$mnt/backup"
src=$mnt/images/disk.img
tgt=$mnt/backup/disk.img
idx=$mnt/backup/.disk.img.vmsync-index
# exact: the target equals the source (qemu-img compare: a cmp would read
# every byte of the holes).
exact() {
	qemu-img compare -q -f raw -F raw "$src" "$tgt" ||
		fail "the target differs from the source"
}
pieces=()
for i in $(seq 0 63); do
	pieces+=("$((i * W + 3 * M)):64K:$((i + 1))")
done
"$HOLES" make "$src" 16G "${pieces[@]}"
vs -q "$src" "$mnt/backup/"
exact

dd if=/dev/urandom of="$src" bs=64K seek=$(((40 * W + 3 * M) / 65536)) \
    count=1 conv=notrunc status=none
sync
dd if="$idx" iflag=nocache count=0 status=none	# drop its cached pages
[ "$(fincore --bytes --noheadings --output RES "$idx" | tr -d ' ')" -eq 0 ] ||
	fail "the index's pages were not dropped"
sync_stats "$src" "$mnt/backup/"
exact
[ "$(stat_of skipped_bytes)" -gt 0 ] || fail "change detection not used"
[ "$(stat_of read_bytes)" -eq 65536 ] ||
	fail "read $(stat_of read_bytes) bytes, not the one changed block"
res=$(fincore --bytes --noheadings --output RES "$idx" | tr -d ' ')
[ "$res" -lt "$M" ] ||
	fail "$res bytes of the index cached: the entries of unchanged windows were read"
echo "index bytes cached after the run: $res"
