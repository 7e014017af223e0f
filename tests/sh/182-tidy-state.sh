#!/usr/bin/env bash
# Proves: the state directory beside the images stays tidy.
#  - One base per target: an image synced to a local target and pushed to
#    a second one, alternately, keeps change detection for both (each run
#    after the first skips data), with two bases in .vmsync.  Unchanged,
#    both report the same figures (data, read, unchanged, not read,
#    written), "not read" within "unchanged".
#  - No lock file outlives its run, also for an image that is refused
#    (a bad --format), and no .new is left.
#  - The base of an image that was deleted goes with the next successful
#    run of another image in the directory.
#  - At most 4 bases per image: a fifth target drops the oldest.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires jq

mnt=$(mkbtrfs 1G)
btrfs subvolume create "$mnt/images" > /dev/null
state=$mnt/images/.vmsync
src=$mnt/images/web.img
"$HOLES" make "$src" 32M 0:8M:1 16M:8M:2
mkdir "$mnt/local" "$mnt/offsite"
vs -q "$src" "$mnt/local/"
rvs -q "$src" "host:$mnt/offsite/"
for i in 1 2; do
	"$HOLES" fill "$src" "$i"M:64K:$((i + 10))
	sync_stats "$src" "$mnt/local/"
	[ "$(stat_of skipped_bytes)" -gt 0 ] || fail "local run $i: no change detection"
	STATS=$(rvs --json --no-progress "$src" "host:$mnt/offsite/")
	[ "$(stat_of skipped_bytes)" -gt 0 ] || fail "pushed run $i: no change detection"
done
same "$src" "$mnt/local/web.img"
same "$src" "$mnt/offsite/web.img"
# Unchanged, a local and a remote run report the same figures, and what
# was not read is part of what was unchanged.
figures() { printf '%s' "$STATS" | jq -c '.images[0] | [.data_bytes, .read_bytes, .unchanged_bytes, .skipped_bytes, .written_bytes]'; }
sync_stats "$src" "$mnt/local/"
here=$(figures)
STATS=$(rvs --json --no-progress "$src" "host:$mnt/offsite/")
[ "$(figures)" = "$here" ] || fail "unchanged: local $here, remote $(figures)"
[ "$(stat_of skipped_bytes)" -le "$(stat_of unchanged_bytes)" ] || fail "not read > unchanged: $(figures)"
[ "$(ls "$state" | grep -c '^web\.img\.[0-9a-f]\{16\}\.base$')" -eq 2 ] ||
	fail "not two bases of web.img: $(ls -A "$state")"

# Locks live only while held; a refused image leaves none.
must_fail 2 "" vs --format=qcow2 "$src" "$mnt/local/refused.img"
[ -z "$(ls -A "$state" | grep -E '\.(lock|new)$')" ] || fail "left behind: $(ls -A "$state")"

# A deleted image's base goes with the next run in the directory.
db=$mnt/images/db.img
"$HOLES" make "$db" 16M 0:4M:3
vs -q "$db" "$mnt/local/"
ls "$state"/db.img.*.base > /dev/null || fail "no base of db.img"
rm "$db"
vs -q "$src" "$mnt/local/"
! ls "$state"/db.img.* > /dev/null 2>&1 || fail "the base of the deleted db.img stayed: $(ls -A "$state")"

# At most 4 bases per image.
for t in a b c; do
	mkdir "$mnt/$t"
	vs -q "$src" "$mnt/$t/"
done
[ "$(ls "$state"/web.img.*.base | wc -l)" -eq 4 ] || fail "bases of web.img: $(ls -A "$state")"
echo "one base per target, nothing left behind"
