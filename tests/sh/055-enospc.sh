#!/usr/bin/env bash
# Proves: running out of space in the middle of a sync is an error, not a
# silent short copy: exit 3 with a one-line "No space left on device" error
# naming the target.  The failed run leaves the index dirty, so once space
# is freed the next run does not trust it ("index":"rebuilt"), compares
# with the target, completes, and the target equals the source (same data
# ranges); the run after that trusts the index and does nothing.  Checked
# for a first sync and for an update of a trusted backup whose new data does
# not fit (failing again while there is still no space: on btrfs the
# error may then name the index, whose header is rewritten copy-on-write),
# on a small ext4 (predictable free space) and on a small btrfs; on btrfs
# also for an update that only rewrites data the target already holds,
# which copy-on-write needs free space for.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires qemu-img jq mkfs.ext4 fallocate

M=1048576
src=$TMP/disk.img
export VMSYNC_DEBUG_OPS=$TMP/ops

avail() { df -B1 --output=avail "$mnt" | tail -n 1; }
settle() {	# let freed space be seen as free
	sync -f "$mnt"
	[ "$fs" != btrfs ] || btrfs filesystem sync "$mnt"
}
# Leave about $1 MiB free, in a file that can be deleted later.
fill_to() {
	settle
	fallocate -l $(($(avail) - $1 * M)) "$mnt/filler" || fail "$fs: fallocate"
	settle
}
# The run fails for lack of space ($1: what), naming $2 (default: the
# target), and leaves the target incomplete.  --force: past the check
# that refuses, before writing, data that cannot fit (073 tests that).
no_space() {
	must_fail 3 "^vmsync: ${2:-$tgt}: .*No space left on device$" \
		vs --force "$src" "$mnt/backup/"
	cmp -s "$src" "$tgt" && fail "$fs, $1: target complete without space?"
	return 0
}
# Free the space; the next run repairs, the one after does nothing.
recovers() {
	rm "$mnt/filler"
	settle
	: > "$TMP/ops"
	sync_stats "$src" "$mnt/backup/"
	[ "$(stat_of index)" = rebuilt ] || fail "$fs, $1: dirty index $(stat_of index)"
	[ "$(stat_of target_read_bytes)" -gt 0 ] || fail "$fs, $1: target not compared"
	same "$src" "$tgt"
	diff <(data_ranges "$src") <(data_ranges "$tgt") || fail "$fs, $1: allocation differs"
	: > "$TMP/ops"
	sync_stats "$src" "$mnt/backup/"
	[ "$(stat_of index)" = trusted ] || fail "$fs, $1: index not trusted after recovery"
	[ ! -s "$TMP/ops" ] || fail "$fs, $1: recovered target rewritten: $(head -3 "$TMP/ops")"
}

for fs in ext4 btrfs; do
	if [ "$fs" = ext4 ]; then
		truncate -s 96M "$TMP/ext4.img"
		mkfs.ext4 -q -F -m 0 "$TMP/ext4.img" || fail "mkfs.ext4"
		dev=$(mkloopdev "$TMP/ext4.img")
		mnt=$TMP/mnt
		mkdir "$mnt"
		mount -t ext4 "$dev" "$mnt" || skip "cannot mount ext4"
		cleanup_fn "umount -l '$mnt' 2>/dev/null"
	else
		mnt=$(mkbtrfs 300M)
	fi
	mkdir "$mnt/backup"
	tgt=$mnt/backup/disk.img

	# Random data, 37 MiB of it, in a 1 GiB image: more than the 8 MiB left.
	"$HOLES" make "$src" 1G 0:8M:1 300M:16M:2 700M:12M:3 1023M:1M:4
	fill_to 8
	no_space "first sync"
	recovers "first sync"

	# A trusted backup; the source gains 20 MiB in holes, and 4 MiB are free.
	"$HOLES" fill "$src" 100M:8M:5 500M:12M:6 4M:64K:7
	fill_to 4
	no_space update
	# Still no space.  On btrfs, where even the index header is written
	# copy-on-write, that write may be the one to find none.
	if [ "$fs" = btrfs ]; then
		no_space "update again" "($tgt|$mnt/backup/\.disk\.img\.vmsync-index)"
	else
		no_space "update again"
	fi
	recovers update

	[ "$fs" = btrfs ] || continue
	# Only data the target holds changes, 28 MiB of it, and 4 MiB are free.
	"$HOLES" fill "$src" 300M:16M:8 700M:12M:9
	fill_to 4
	no_space rewrite
	recovers rewrite
done
