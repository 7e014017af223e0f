#!/usr/bin/env bash
# Proves: vmsync --since BASE SRC ARCHIVE writes an incremental archive of
# what changed between two generations of a backup, and vmsync ARCHIVE DIR/
# applies it onto DIR/NAME when that is the base, in place.
#  - Between two btrfs snapshots of a backup (same index, same seed), the
#    changes come from the indexes: only the changed blocks are read (as
#    -v says, and as strace counts every byte the process reads); an
#    8 MiB change makes an archive under 11 MiB, holding only the sectors
#    that differ (a 100-byte change costs one 4 KiB sector).
#  - The archive is two pax entries, NAME.vmsync-delta (text) then NAME
#    (sparse): GNU tar and bsdtar list and extract it without error; a
#    .tar.zst one (and one on stdout) passes zstd -t.
#  - Applied onto a copy of the base: cmp-equal to the new generation,
#    the trimmed range is a hole again, the index beside it is trusted
#    (--verify passes; a sync of the new generation writes nothing).  Onto
#    a vmsync backup of the base with a trusted index: only the blocks the
#    delta changes are read.
#  - A chain, a full archive extracted then two incrementals (the second
#    grows the image) applied in order, rebuilds the last generation.
#  - Between two btrfs snapshots of a plain image (no index), chunks on
#    the same extents are equal without reading the new one (-v counts
#    them); the archive is the same and applies the same.
#  - Without trusted indexes (plain files), both files are compared and
#    the archive is the same size; applying it gives the same result, and
#    so does one that shrinks the image to a size that is no multiple of
#    a block (.tar.gz).
#  - Refusals, one line, nothing written: onto a file that is not the base
#    (exit 3, unchanged, index unchanged), onto a directory without NAME
#    (exit 3, nothing created); a malformed delta (exit 2).  Making one:
#    usage errors (exit 1), a missing BASE (exit 2), no archive left.
. "$VMSYNC_TOP/tests/functions.sh"
requires tar bsdtar zstd
requires_btrfs

cd "$TMP" || fail "cd $TMP"
M=$((1 << 20))
mnt=$(mkbtrfs 2G)
btrfs subvolume create "$mnt/vol" > /dev/null
d=$mnt/vol/images
mkdir "$d"
src=$TMP/vm.img
"$HOLES" make "$src" 256M 0:64M:1 100M:32M:2 200M:16M:3

# Three generations, each a read-only snapshot; plain copies of the source
# at each step for the path without indexes.
vs -q --snapshot "$src" "$d/"
mkdir p1 p2
cp --sparse=always "$src" "$TMP/p1/vm.img"
sleep 1.1
"$HOLES" fill "$src" 20M:8M:7
dd if=/dev/urandom of="$src" bs=100 count=1 seek=$(((70 * M + 123) / 100)) \
	conv=notrunc status=none
fallocate -p -o $((40 * M)) -l $((4 * M)) "$src"
vs -q --snapshot "$src" "$d/"
cp --sparse=always "$src" "$TMP/p2/vm.img"
sleep 1.1
"$HOLES" fill "$src" 150M:2M:9
fallocate -p -o 0 -l $((1 * M)) "$src"
truncate -s 300M "$src"
"$HOLES" fill "$src" 290M:64K:11
vs -q --snapshot "$src" "$d/"
mapfile -t gens < <(find "$mnt/vol/.vmsync-snapshots" -name vm.img | sort)
[ "${#gens[@]}" -eq 3 ] || fail "snapshots: ${gens[*]}"
g1=${gens[0]} g2=${gens[1]} g3=${gens[2]}
cmp "$g2" "$TMP/p2/vm.img" || fail "generation 2 is not the source"

# (1) From the indexes: only changed blocks read, small archive.
vs -v --since "$g1" "$g2" inc1.tar 2> "$TMP/log" || fail "inc1: exit $?"
grep -q "changes from the indexes" "$TMP/log" || fail "not from the indexes: $(cat "$TMP/log")"
read_bytes=$(sed -n 's/.*; read \([0-9]*\) bytes.*/\1/p' "$TMP/log")
[ -n "$read_bytes" ] && [ "$read_bytes" -le $((20 * M)) ] ||
	fail "read $read_bytes bytes for an 8 MiB change: $(cat "$TMP/log")"
# The same seen from outside: every byte the process reads, at most the
# changed blocks of both files and the changed sectors again (the images
# hold 112 MiB of data each).
if command -v strace > /dev/null; then
	# (LeakSanitizer cannot run under ptrace.)
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 strace -f -qq -e trace=read,pread64,preadv,preadv2 -o "$TMP/trace" \
		"$VMSYNC" --since "$g1" "$g2" traced.tar || fail "strace: exit $?"
	total=$(awk '/= [0-9]+$/ { s += $NF } END { print s + 0 }' "$TMP/trace")
	[ "$total" -le $((32 * M)) ] || fail "read $total bytes in all"
fi
size=$(stat -c %s inc1.tar)
[ "$size" -lt $((11 * M)) ] || fail "inc1.tar is $size bytes"
[ "$size" -gt $((8 * M)) ] || fail "inc1.tar is only $size bytes"
[ "$(tar -tf inc1.tar | tr '\n' ' ')" = "vm.img.vmsync-delta vm.img " ] ||
	fail "GNU tar lists: $(tar -tf inc1.tar)"
[ "$(bsdtar -tf inc1.tar | tr '\n' ' ')" = "vm.img.vmsync-delta vm.img " ] ||
	fail "bsdtar lists: $(bsdtar -tf inc1.tar)"
for tool in tar bsdtar; do
	rm -rf x && mkdir x
	"$tool" -xf inc1.tar -C x || fail "$tool -xf inc1.tar"
	[ "$(stat -c %s x/vm.img)" -eq $((256 * M)) ] || fail "$tool: size"
done
head -1 x/vm.img.vmsync-delta | grep -qx "vmsync-delta 1" || fail "text: $(cat x/vm.img.vmsync-delta)"
grep -qx "hole $((40 * M)) $((4 * M))" x/vm.img.vmsync-delta ||
	fail "no hole line for the trim: $(cat x/vm.img.vmsync-delta)"
# Only the sector the 100 bytes touched is stored there.
data_ranges x/vm.img | grep -q "^$((70 * M + 0)) 4096$" ||
	fail "the 100-byte change is not one sector: $(data_ranges x/vm.img)"

# (2) Onto a copy of the base: the new generation, holes, a trusted index.
mkdir ap
cp --sparse=always "$g1" ap/vm.img
vs inc1.tar ap/ || fail "apply inc1: exit $?"
same ap/vm.img "$g2"
data_ranges ap/vm.img | awk -v a=$((40 * M)) -v b=$((44 * M)) \
	'$1 < b && $1 + $2 > a { bad = 1 } END { exit bad }' ||
	fail "the trimmed range holds data: $(data_ranges ap/vm.img)"
vs --verify ap/vm.img > /dev/null || fail "the index is not trusted after apply"
VMSYNC_DEBUG_OPS=$TMP/ops vs -q "$g2" ap/ || fail "resync: exit $?"
[ ! -s "$TMP/ops" ] || fail "a sync after apply still wrote: $(head "$TMP/ops")"

# (3) Onto a vmsync backup of the base: its trusted index says what is
# there, so only the blocks the delta touches are read and written.
mkdir bk
vs -q "$g1" bk/
VMSYNC_DEBUG_OPS=$TMP/ops2 vs -v inc1.tar bk/ 2> "$TMP/log" || fail "apply onto bk: exit $?"
grep -q "index trusted" "$TMP/log" || fail "index not trusted: $(cat "$TMP/log")"
same bk/vm.img "$g2"
written=$(awk '$1 == "write" { s += $3 } END { print s + 0 }' "$TMP/ops2")
[ "$written" -le $((9 * M)) ] || fail "wrote $written bytes for an 8 MiB change"
vs --verify bk/vm.img > /dev/null || fail "bk: index not trusted after apply"

# (4) Refusals: not the base (exit 3, nothing written), no NAME, malformed.
sum=$(md5sum < ap/.vm.img.vmsync-index)
must_fail 3 "ap/vm.img: not the base of inc1.tar" vs inc1.tar ap/
cmp ap/vm.img "$g2" || fail "a refused apply changed the file"
[ "$(md5sum < ap/.vm.img.vmsync-index)" = "$sum" ] || fail "a refused apply changed the index"
mkdir empty
must_fail 3 "empty/vm.img: no base" vs inc1.tar empty/
[ -z "$(ls -A empty)" ] || fail "a refused apply left: $(ls -A empty)"
# bad_delta SED RE: inc1's text edited by SED, in an archive that must be
# refused with RE (exit 2), leaving the base as it was.
bad_delta() {
	rm -rf bad && mkdir bad
	sed "$1" x/vm.img.vmsync-delta > bad/vm.img.vmsync-delta
	cp --sparse=always x/vm.img bad/vm.img
	tar --format=pax --sparse -cf bad.tar -C bad vm.img.vmsync-delta vm.img
	cp --sparse=always "$g1" bad/vm.img
	must_fail 2 "bad.tar: not a valid incremental archive: $2" vs bad.tar bad/
	cmp bad/vm.img "$g1" || fail "a malformed delta changed the file"
}
bad_delta "s/^hole $((40 * M)) /hole $((40 * M + 1)) /" "line 9 .*checksum"
bad_delta "s/^size .*/size 12/" "line 8 .*hole out of range"
bad_delta "s/^block-size .*/block-size 65537/" "line 6 .*block size"
bad_delta "s/^base-size .*/base-size 99999999999999999999999/" "line 3 .*out of range"

# Making one: usage errors (exit 1), a missing BASE (exit 2); no archive.
must_fail 1 "single SRC" vs --since "$g1" "$g2" "$g3" u.tar
must_fail 1 "-f and -O do not apply" vs -O raw --since "$g1" "$g2" u.tar
must_fail 1 "between local files" vs --since host:vm.img "$g2" u.tar
must_fail 1 "applied to a local DIR/" vs inc1.tar host:/backup/
must_fail 2 "nope.img: cannot open" vs --since "$TMP/nope.img" "$g2" u.tar
[ -z "$(ls u.tar* 2>/dev/null)" ] || fail "a refused export left $(ls u.tar*)"

# (5) A chain: the full archive, then two incrementals; the second grows
# the image and is compressed with zstd, once more on stdout.
vs "$g1" full.tar
vs --since "$g2" "$g3" inc2.tar.zst || fail "inc2: exit $?"
zstd -q -t inc2.tar.zst || fail "zstd -t inc2.tar.zst"
vs --archive=tar.zst --since "$g2" "$g3" - > stdout.tar.zst || fail "stdout: exit $?"
zstd -q -t stdout.tar.zst || fail "zstd -t stdout.tar.zst"
bsdtar -tf inc2.tar.zst > /dev/null || fail "bsdtar -tf inc2.tar.zst"
mkdir chain
tar -xf full.tar -C chain || fail "tar -xf full.tar"
vs inc1.tar chain/ || fail "chain inc1: exit $?"
vs inc2.tar.zst chain/ || fail "chain inc2: exit $?"
same chain/vm.img "$g3"
[ "$(stat -c %s chain/vm.img)" -eq $((300 * M)) ] || fail "chain: size"
vs --verify chain/vm.img > /dev/null || fail "chain: index not trusted"

# (6) Without indexes: both files compared, the same changes.
vs -v --since "$TMP/p1/vm.img" "$TMP/p2/vm.img" plain.tar 2> "$TMP/log" || fail "plain: exit $?"
grep -q "both files compared" "$TMP/log" || fail "plain: $(cat "$TMP/log")"
psize=$(stat -c %s plain.tar)
[ "$psize" -eq "$size" ] || fail "plain.tar is $psize bytes, inc1.tar $size"
mkdir pl
cp --sparse=always "$TMP/p1/vm.img" pl/vm.img
vs plain.tar pl/ || fail "apply plain: exit $?"
same pl/vm.img "$TMP/p2/vm.img"
# A generation that shrinks to a size that is no multiple of a block.
mkdir p3
cp --sparse=always "$TMP/p2/vm.img" p3/vm.img
truncate -s $((200 * M + 12345)) p3/vm.img
"$HOLES" fill p3/vm.img 199M:1M:13
vs --since "$TMP/p2/vm.img" p3/vm.img shrink.tar.gz || fail "shrink: exit $?"
vs shrink.tar.gz pl/ || fail "apply shrink: exit $?"
same pl/vm.img p3/vm.img
vs --verify pl/vm.img > /dev/null || fail "shrink: index not trusted"
# Its base digest comes from the base's contents: it applies to any copy
# of that base, here generation 1.
mkdir pl2
cp --sparse=always "$g1" pl2/vm.img
vs plain.tar pl2/ || fail "plain onto g1 copy: exit $?"
same pl2/vm.img "$g2"

# (7) Two btrfs snapshots of a plain image (no index): the extents tell
# what is equal, so of the unchanged data only BASE is read (for its
# digest), and the archive is the same.
btrfs subvolume create "$mnt/host" > /dev/null
cp --reflink=never --sparse=always "$TMP/p1/vm.img" "$mnt/host/vm.img"
btrfs subvolume snapshot -r "$mnt/host" "$mnt/host@1" > /dev/null
"$HOLES" fill "$mnt/host/vm.img" 20M:8M:7
dd if=/dev/urandom of="$mnt/host/vm.img" bs=100 count=1 \
	seek=$(((70 * M + 123) / 100)) conv=notrunc status=none
fallocate -p -o $((40 * M)) -l $((4 * M)) "$mnt/host/vm.img"
btrfs subvolume snapshot -r "$mnt/host" "$mnt/host@2" > /dev/null
vs -v --since "$mnt/host@1/vm.img" "$mnt/host@2/vm.img" ext.tar 2> "$TMP/log" ||
	fail "extents: exit $?"
equal=$(sed -n 's/.*; \([0-9]*\) bytes equal by their extents.*/\1/p' "$TMP/log")
read_bytes=$(sed -n 's/.*; read \([0-9]*\) bytes.*/\1/p' "$TMP/log")
# 256 MiB, of which about 10 MiB changed: at least 240 MiB equal by
# extents, and only BASE's 112 MiB of data plus the changed MiB read.
[ -n "$equal" ] && [ "$equal" -ge $((240 * M)) ] ||
	fail "extents: $equal bytes equal by extents: $(cat "$TMP/log")"
[ "$read_bytes" -le $((140 * M)) ] ||
	fail "extents: read $read_bytes bytes: $(cat "$TMP/log")"
[ "$(stat -c %s ext.tar)" -eq "$size" ] ||
	fail "ext.tar is $(stat -c %s ext.tar) bytes, inc1.tar $size"
mkdir pe
cp --sparse=always "$mnt/host@1/vm.img" pe/vm.img
vs ext.tar pe/ || fail "apply ext: exit $?"
same pe/vm.img "$mnt/host@2/vm.img"
exit 0
