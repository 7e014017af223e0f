#!/usr/bin/env bash
# Proves: change detection (FIEMAP of the base against the new clone) skips
# exactly what did not change, whatever way the image was changed, and is
# not used when the target does not hold the base.
#  - Effective and exact: after each change the target equals the source,
#    skipped_bytes > 0, read + skipped covers the data bytes, and
#    read_bytes is the changed 64 KiB blocks (plus at most 2 blocks):
#    (a) writes in place (dd conv=notrunc), (b) holes punched (fallocate
#    -p), whole blocks and inside a block, (c) a range shared from another
#    file (FICLONERANGE), (d) a truncate then an extension back to the same
#    size; a size change (smaller, to an unaligned size, larger) still
#    skips what both sizes hold and reads exactly the block at the old or
#    new end again: nothing when that block is past the new end, its 12345
#    bytes of data when shrunk to 12 MiB + 12345, the whole block (with the
#    new data) when grown back;
#    (e) on a compress=zstd mount: exact, the compressed extents always read,
#    incompressible ones still skipped; (f) writes inside a preallocated
#    (unwritten) extent.  A nodatacow image is 163, qcow2 images 164.
#    A run with nothing changed reads nothing.  The target's read-ahead
#    (VMSYNC_DEBUG_HINTS, written as the kernel takes it) covers exactly
#    the blocks read, and every write lies inside it.  A block rewritten
#    with its own bytes is read and not written, and nothing else changed:
#    the target's old bytes of exactly that block are in the page cache
#    after the run (fincore), where only the read-ahead can have put them.
#  - The same source synced alternately to two targets: each target keeps
#    its own base and reads only what changed since its last run.
#  - Not used (skipped 0, still exact): a target put back from an older copy; the run after an
#    interrupted one (SIGTERM: exit 4; kill -9, leaving a .new behind, which
#    the next run replaces).  A run that fails before writing (the target's
#    filesystem read-only) keeps the base: the next run skips and is exact.
#  - --since: a target synced from snapshot 1's image is brought to snapshot
#    2's with --since snapshot 1 (skipped > 0, exact); a --since that is a
#    plain writable file warns and reads everything; a --since in another
#    snapshot than the one the target was synced from reads everything.
#  - A push and a pull through the remote protocol skip too, and are exact.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires jq fallocate fincore

mnt=$(mkbtrfs 3G)
K=1024
M=$((1024 * K))
B=$((64 * K))
btrfs subvolume create "$mnt/images" > /dev/null
mkdir "$mnt/backup"
src=$mnt/images/disk.img
tgt=$mnt/backup/disk.img
"$HOLES" make "$src" 64M 0:16M:1 32M:16M:2
vs -q "$src" "$mnt/backup/"
same "$src" "$tgt"

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
# incr WHAT MIN MAX [ARGS...]: sync $src into $mnt/backup/ (ARGS before);
# exact, change detection used, MIN <= read_bytes <= MAX + 2 blocks.
incr() {
	local what=$1 min=$2 max=$3 r
	shift 3
	sync_stats "$@" "$src" "$mnt/backup/" || fail "$what: vmsync exits $?"
	check "$what" "$src" "$tgt"
	[ "$(stat_of index)" = trusted ] || fail "$what: index $(stat_of index)"
	[ "$(stat_of skipped_bytes)" -gt 0 ] || fail "$what: nothing skipped"
	r=$(stat_of read_bytes)
	if [ "$r" -lt "$min" ] || [ "$r" -gt $((max + 2 * B)) ]; then
		fail "$what: read $r bytes, not $min..$((max + 2 * B))"
	fi
}
# reads WHAT N: the last $STATS read exactly N bytes of the source.
reads() {
	[ "$(stat_of read_bytes)" -eq "$2" ] ||
		fail "$1: read $(stat_of read_bytes) bytes, not $2"
}
# resident FILE: bytes of FILE in the page cache.
resident() { fincore --bytes --noheadings --output RES "$1" | tr -d ' '; }
# full WHAT SRC DEST [ARGS...]: sync without change detection, exact.
full() {
	local what=$1 s=$2 d=$3
	shift 3
	local rc=0
	sync_stats "$@" "$s" "$d" 2> "$TMP/err" || rc=$?
	[ "$rc" -eq 0 ] || { cat "$TMP/err"; fail "$what: vmsync exits $rc"; }
	[ "$(stat_of skipped_bytes)" -eq 0 ] ||
		fail "$what: skipped $(stat_of skipped_bytes) bytes"
	case $d in */) d=$d$(basename "$s") ;; esac
	check "$what" "$s" "$d"
}

incr "unchanged" 0 0
[ "$(stat_of read_bytes)" -eq 0 ] || fail "unchanged: read $(stat_of read_bytes)"
# --stats says the same: every data byte unchanged and not read.
vs --stats "$src" "$mnt/backup/" > "$TMP/stats"
grep -Eq "^ +of which not read: .*\($(stat_of data_bytes) bytes\)$" "$TMP/stats" ||
	{ cat "$TMP/stats"; fail "--stats does not report the bytes not read"; }

# (a) In place: 4 KiB inside one block, 100 KiB over three blocks.
dd if=/dev/urandom of="$src" bs=4K seek=$((256 + 2)) count=1 conv=notrunc status=none
dd if=/dev/urandom of="$src" bs=4K seek=$((5 * 256 + 15)) count=25 conv=notrunc status=none
: > "$TMP/ops"
: > "$TMP/hints"
# An index from before sector records (version 3): the old bytes are read.
"$VMSYNC_HELPERS/idxforge" downgrade "$mnt/backup/.$(basename "$src").vmsync-index"
VMSYNC_DEBUG_OPS=$TMP/ops VMSYNC_DEBUG_HINTS=$TMP/hints \
    incr "dd" $((4 * B)) $((4 * B))
# The target was asked to fetch the old bytes of exactly what was read,
# and every write lies inside what it fetched.
pf=$(awk '$1 == "prefetch" { n += $3 } END { print n + 0 }' "$TMP/hints")
[ "$pf" -eq "$(stat_of read_bytes)" ] ||
	fail "dd: prefetched $pf bytes, read $(stat_of read_bytes)"
grep -q '^write ' "$TMP/ops" || fail "dd: nothing written"
awk 'FNR == NR { lo[n] = $2; hi[n++] = $2 + $3; next }
    { ok = 0
	for (i = 0; i < n; i++) if ($2 >= lo[i] && $2 + $3 <= hi[i]) ok = 1
	if (!ok) { print "write outside the prefetched ranges: " $0; exit 1 } }' \
    "$TMP/hints" "$TMP/ops" || fail "dd: a write was not prefetched"

# A block rewritten with its own bytes: new extents, so it is read, but it
# equals its entry, so the target neither compares nor writes it.  With
# the target's pages dropped, only the read-ahead can bring that block's
# old bytes into the page cache, and nothing else is asked for.
blk=$((8 * M / B))
dd if="$src" of="$src" bs="$B" skip="$blk" seek="$blk" count=1 conv=notrunc status=none
dd if="$tgt" iflag=nocache count=0 status=none	# drop its cached pages
[ "$(resident "$tgt")" -eq 0 ] || fail "the target's pages were not dropped"
: > "$TMP/ops"
: > "$TMP/hints"
VMSYNC_DEBUG_OPS=$TMP/ops VMSYNC_DEBUG_HINTS=$TMP/hints \
    sync_stats "$src" "$mnt/backup/"
for _ in $(seq 1 1000); do	# the read-ahead completes in the background
	[ "$(resident "$tgt")" -ge "$B" ] && break
	sleep 0.01
done
[ "$(resident "$tgt")" -eq "$B" ] ||
	fail "same bytes: $(resident "$tgt") bytes of the target cached, not $B"
[ "$(cat "$TMP/hints")" = "prefetch $((blk * B)) $B" ] ||
	fail "same bytes: read ahead $(cat "$TMP/hints")"
[ ! -s "$TMP/ops" ] || fail "same bytes: wrote $(cat "$TMP/ops")"
reads "same bytes" "$B"
check "same bytes" "$src" "$tgt"
[ "$(stat_of index)" = trusted ] || fail "same bytes: index $(stat_of index)"
[ "$(stat_of skipped_bytes)" -gt 0 ] || fail "same bytes: nothing skipped"

# (b) Punched: a whole MiB (nothing to read), 8 KiB inside a block.
fallocate -p -o $((2 * M)) -l "$M" "$src"
fallocate -p -o $((3 * M + 4 * K)) -l $((8 * K)) "$src"
incr "punch" "$B" "$B"
[ "$(stat_of punched_bytes)" -ge $((M + 8 * K)) ] ||
	fail "punch: punched $(stat_of punched_bytes)"

# (c) 2 MiB shared from another file.
"$HOLES" make "$mnt/images/other.img" 8M 0:8M:3
"$HOLES" reflink "$mnt/images/other.img" 1M "$src" 5M 2M
cmp -s -i $((5 * M)):$M -n $((2 * M)) "$src" "$mnt/images/other.img" ||
	fail "reflink did not share the range"
incr "reflink" $((2 * M)) $((2 * M))

# (d) Truncated to 40 MiB and extended back: the tail of the data is holes.
truncate -s 40M "$src"
truncate -s 64M "$src"
incr "truncate and extend" 0 0
# A size change keeps change detection for what both sizes hold; the block
# at the old or new end is read again: none at 48 MiB (the end block is
# past the new end), then the 12345 bytes left of a data block at an
# unaligned end, then, grown back, that whole block with the new MiB.
truncate -s 48M "$src"
incr "shrunk" 0 0
reads "shrunk" 0
truncate -s $((12 * M + 12345)) "$src"
incr "shrunk to an unaligned size" 12345 12345
reads "shrunk to an unaligned size" 12345
truncate -s 80M "$src"
"$HOLES" fill "$src" 70M:1M:4
incr "grown" $((M + B)) $((M + B))
reads "grown" $((M + B))
incr "unchanged after growing" 0 0
reads "unchanged after growing" 0

# (f) Preallocated (fallocate), written inside the unwritten extent.
pre=$mnt/images/prealloc.img
fallocate -l 32M "$pre"
"$HOLES" fill "$pre" 0:4M:21
vs -q "$pre" "$mnt/backup/"
for i in 1 2; do
	"$HOLES" fill "$pre" 10M:4K:$((21 + i)) $((12 * M + i * 4096)):4K:$((23 + i))
	sync_stats "$pre" "$mnt/backup/"
	check "preallocated $i" "$pre" "$mnt/backup/prealloc.img"
	[ "$(stat_of skipped_bytes)" -gt 0 ] || fail "preallocated $i: nothing skipped"
	[ "$(stat_of read_bytes)" -le $((2 * B)) ] ||
		fail "preallocated $i: read $(stat_of read_bytes)"
done

# --- Two targets, alternately: each keeps its own base.
mkdir "$mnt/backup2"
vs -q "$src" "$mnt/backup2/"
"$HOLES" fill "$src" 1M:64K:7
incr "first target after the second" "$B" "$B"
"$HOLES" fill "$src" 9M:64K:8
sync_stats "$src" "$mnt/backup2/"
check "second target after the first" "$src" "$mnt/backup2/disk.img"
[ "$(stat_of skipped_bytes)" -gt 0 ] || fail "second target: nothing skipped"
[ "$(stat_of read_bytes)" -le $((4 * B)) ] ||
	fail "second target: read $(stat_of read_bytes) bytes, not the 2 changed blocks"
sync_stats "$src" "$mnt/backup2/"
check "second target again" "$src" "$mnt/backup2/disk.img"
[ "$(stat_of read_bytes)" -eq 0 ] || fail "second target again: read $(stat_of read_bytes)"

# --- Not the base the target holds: everything is read.

# The target put back from an older copy (with its index).
cp -a --sparse=always "$tgt" "$mnt/backup/.disk.img.vmsync-index" "$TMP/"
"$HOLES" fill "$src" 10M:64K:9
incr "first target, copied before" "$B" "$B"
"$HOLES" fill "$src" 11M:64K:10
incr "first target, caught up" "$B" "$B"
cp -a --sparse=always "$TMP/disk.img" "$TMP/.disk.img.vmsync-index" "$mnt/backup/"
"$HOLES" fill "$src" 12M:64K:11
full "restored target" "$src" "$mnt/backup/"
incr "restored target, next run" 0 0

# A run that fails before writing anything keeps the base.
mnt2=$(mkbtrfs 1G)
vs -q "$src" "$mnt2/"
"$HOLES" fill "$src" 13M:64K:12
mount -o remount,ro "$mnt2"
cleanup_fn "mount -o remount,rw '$mnt2' 2>/dev/null"
must_fail 3 "Read-only file system" vs "$src" "$mnt2/"
mount -o remount,rw "$mnt2"
[ ! -e "$mnt/images/.vmsync/disk.img.new" ] || fail "failed run left its clone"
sync_stats "$src" "$mnt2/"
check "after a failed run" "$src" "$mnt2/disk.img"
[ "$(stat_of skipped_bytes)" -gt 0 ] || fail "after a failed run: nothing skipped"

# Interrupted runs, on an image big enough to stop in the middle.
big=$mnt/images/big.img
bigt=$mnt2/big.img
"$HOLES" make "$big" 512M 0:64M:1 150M:64M:2 300M:64M:3 488M:24M:4
vs -q "$big" "$mnt2/"
export VMSYNC_DEBUG_OPS=$TMP/ops
for sig in TERM KILL; do
	stopped=0
	for attempt in 1 2 3; do
		seed=$((attempt * 10))
		[ "$sig" = KILL ] && seed=$((seed + 100))
		"$HOLES" fill "$big" 0:64M:$((seed + 1)) 150M:64M:$((seed + 2)) \
			300M:64M:$((seed + 3)) 488M:24M:$((seed + 4))
		start_vmsync "$big" "$mnt2/"
		kill -"$sig" "$pid" 2> /dev/null || true
		rc=0
		wait "$pid" || rc=$?
		if [ "$rc" -ne 0 ] && ! cmp -s "$big" "$bigt"; then
			stopped=1
			break
		fi
		[ "$rc" -eq 0 ] || fail "SIG$sig: exit $rc"
		echo "attempt $attempt: the run had finished when SIG$sig came"
	done
	[ "$stopped" -eq 1 ] || fail "never stopped a run in the middle with SIG$sig"
	case $sig in
	TERM)	[ "$rc" -eq 4 ] || fail "SIGTERM: exit $rc, not 4"
		[ ! -e "$mnt/images/.vmsync/big.img.new" ] ||
			fail "SIGTERM: the clone was left behind" ;;
	KILL)	[ "$rc" -eq 137 ] || fail "kill -9: exit $rc" ;;
	esac
	full "after SIG$sig" "$big" "$mnt2/"
	[ "$(stat_of index)" = rebuilt ] || fail "after SIG$sig: index $(stat_of index)"
	[ ! -e "$mnt/images/.vmsync/big.img.new" ] ||
		fail "after SIG$sig: .new left behind"
	"$HOLES" fill "$big" 100K:4K:99
	sync_stats "$big" "$mnt2/"
	check "after SIG$sig, next run" "$big" "$bigt"
	[ "$(stat_of skipped_bytes)" -gt 0 ] || fail "after SIG$sig, next run: nothing skipped"
done
unset VMSYNC_DEBUG_OPS
rm -f "$big" "$bigt" "$mnt2/.big.img.vmsync-index" "$mnt/images/.vmsync/big.img."*.base

# --- --since, with read-only snapshots of the images' subvolume.
mkdir "$mnt/since"
btrfs subvolume snapshot -r "$mnt/images" "$mnt/snap1" > /dev/null
vs -q "$mnt/snap1/disk.img" "$mnt/since/" ||
	fail "syncing a read-only snapshot's image exits $?"
"$HOLES" fill "$src" 20M:64K:13
btrfs subvolume snapshot -r "$mnt/images" "$mnt/snap2" > /dev/null
sync_stats --since "$mnt/snap1/disk.img" "$mnt/snap2/disk.img" "$mnt/since/"
check "--since" "$mnt/snap2/disk.img" "$mnt/since/disk.img"
[ "$(stat_of skipped_bytes)" -gt 0 ] || fail "--since: nothing skipped"
[ "$(stat_of read_bytes)" -le $((3 * B)) ] || fail "--since: read $(stat_of read_bytes)"
# A plain writable file as the base: a warning, everything read.
"$HOLES" fill "$src" 21M:64K:14
btrfs subvolume snapshot -r "$mnt/images" "$mnt/snap3" > /dev/null
cp --reflink=always "$mnt/snap2/disk.img" "$mnt/plain.img"
full "--since a plain file" "$mnt/snap3/disk.img" "$mnt/since/" --since "$mnt/plain.img"
grep -q "^vmsync: warning: $mnt/plain.img: " "$TMP/err" ||
	{ cat "$TMP/err"; fail "--since a plain file: no warning"; }
# The target now holds snapshot 3: snapshot 2 is not its base.
"$HOLES" fill "$src" 22M:64K:15
btrfs subvolume snapshot -r "$mnt/images" "$mnt/snap4" > /dev/null
full "--since another snapshot" "$mnt/snap4/disk.img" "$mnt/since/" --since "$mnt/snap2/disk.img"
sync_stats --since "$mnt/snap4/disk.img" "$mnt/snap4/disk.img" "$mnt/since/"
check "--since itself" "$mnt/snap4/disk.img" "$mnt/since/disk.img"
[ "$(stat_of read_bytes)" -eq 0 ] || fail "--since itself: read $(stat_of read_bytes)"

# --- Through the remote protocol: a push, then a pull (which keeps its
# state beside the image too, so they take turns).
r=$mnt/images/remote.img
"$HOLES" make "$r" 64M 0:16M:16 32M:16M:17
mkdir "$mnt/pushed" "$mnt/pulled"
rvs -q "$r" "host:$mnt/pushed/"
"$HOLES" fill "$r" 3M:64K:18
STATS=$(rvs --json --no-progress "$r" "host:$mnt/pushed/")
check "push" "$r" "$mnt/pushed/remote.img"
[ "$(stat_of skipped_bytes)" -gt 0 ] || fail "push: nothing skipped"
[ "$(stat_of written_bytes)" -eq "$B" ] || fail "push: wrote $(stat_of written_bytes)"
rvs -q "host:$r" "$mnt/pulled/"
"$HOLES" fill "$r" 4M:64K:19
STATS=$(rvs --json --no-progress "host:$r" "$mnt/pulled/")
check "pull" "$r" "$mnt/pulled/remote.img"
[ "$(stat_of skipped_bytes)" -gt 0 ] || fail "pull: nothing skipped"
[ "$(stat_of written_bytes)" -eq "$B" ] || fail "pull: wrote $(stat_of written_bytes)"

# --- (e) compress=zstd: compressed extents are read, the others skipped.
mnt3=$(mkbtrfs 1G)
mount -o remount,compress=zstd "$mnt3"
z=$mnt3/text.img
{ yes "vmsync compressible line of text" || :; } | head -c $((8 * M)) > "$z"
truncate -s 32M "$z"
"$HOLES" fill "$z" 16M:8M:20
mkdir "$mnt3/backup"
vs -q "$z" "$mnt3/backup/"
printf 'XYZ' | dd of="$z" bs=1 seek=$((5 * M + 17)) conv=notrunc status=none
printf 'XYZ' | dd of="$z" bs=1 seek=$((20 * M + 5)) conv=notrunc status=none
sync_stats "$z" "$mnt3/backup/"
check "compress=zstd" "$z" "$mnt3/backup/text.img"
[ "$(stat_of read_bytes)" -ge $((8 * M)) ] ||
	fail "compress=zstd: read $(stat_of read_bytes): compressed extents skipped"
[ "$(stat_of skipped_bytes)" -gt 0 ] || fail "compress=zstd: nothing skipped"
