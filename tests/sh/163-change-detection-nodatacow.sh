#!/usr/bin/env bash
# Proves: change detection (FIEMAP of the base against the new clone) works
# on a nodatacow (chattr +C) image, whose writes land on the extents the
# image already has: an image made empty, then filled, is synced three
# times with a range written between runs (twice the second time, in place
# the second write, since the range is then the image's own).  Each run is
# exact (the target equals the source, read + skipped covers the data),
# keeps a trusted index, skips something and reads at most two blocks.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires jq chattr lsattr

mnt=$(mkbtrfs 1G)
B=$((64 * 1024))
btrfs subvolume create "$mnt/images" > /dev/null
mkdir "$mnt/backup"

# check WHAT SRC TGT: the last $STATS is an exact sync in which the bytes
# read and skipped (whole blocks) cover the data.
check() {
	local r s d
	same "$2" "$3"
	r=$(stat_of read_bytes)
	s=$(stat_of skipped_bytes)
	d=$(stat_of data_bytes)
	[ $((r + s)) -ge "$d" ] ||
		fail "$1: read $r + skipped $s < data $d"
}

nc=$mnt/images/nocow.img
touch "$nc"
chattr +C "$nc"
lsattr "$nc" | grep -q '^[^ ]*C' || skip "chattr +C did not set nodatacow"
"$HOLES" fill "$nc" 0:16M:5 32M:16M:6
truncate -s 64M "$nc"
vs -q "$nc" "$mnt/backup/"
for i in 1 2 3; do
	dd if=/dev/urandom of="$nc" bs=4K seek=1000 count=3 conv=notrunc status=none
	[ "$i" -eq 2 ] &&	# again: the range is now the image's own
		dd if=/dev/urandom of="$nc" bs=4K seek=1000 count=4 conv=notrunc status=none
	sync_stats "$nc" "$mnt/backup/"
	check "nodatacow $i" "$nc" "$mnt/backup/nocow.img"
	[ "$(stat_of index)" = trusted ] || fail "nodatacow $i: index $(stat_of index)"
	[ "$(stat_of skipped_bytes)" -gt 0 ] || fail "nodatacow $i: nothing skipped"
	[ "$(stat_of read_bytes)" -le $((2 * B)) ] ||
		fail "nodatacow $i: read $(stat_of read_bytes)"
done
