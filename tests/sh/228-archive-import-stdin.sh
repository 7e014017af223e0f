#!/usr/bin/env bash
# Proves: vmsync - DIR/ imports or applies an archive read from standard
# input (a restore straight from an offsite store: ssh host 'cat x' |
# vmsync - DIR/), exactly as from the archive's file:
#  - a full .tar.zst through a pipe: DIR/NAME cmp-equal, holes where the
#    image has holes, index trusted; again through a pipe: nothing written;
#  - then an incremental .tar.gz through a pipe onto it: the new
#    generation; onto a file that is not its base: exit 3, nothing written;
#  - a .txz redirected from its file (read where it is, not copied);
#  - garbage, a truncated stream and an empty one: exit 2, one line
#    naming "-", nothing written; "-" twice: exit 1;
#  - what is read is held in an unnamed file: nothing is left in DIR or
#    in TMPDIR after any of these, and the copy of a stream that fills
#    the disk fails with one line, exit 3.
. "$VMSYNC_TOP/tests/functions.sh"
requires zstd python3 jq
requires_root
requires_ext4

cd "$TMP" || fail "cd $TMP"
M=$((1 << 20))
# Two generations of one image, a/vm.img and b/vm.img.
mkdir a b
"$HOLES" make a/vm.img 64M 0:4M:1 10M:2M:2 40000000:960K:3
cp --sparse=always a/vm.img b/vm.img
"$HOLES" fill b/vm.img 20M:3M:7
fallocate -p -o $((10 * M)) -l $((1 * M)) b/vm.img
vs a/vm.img full.tar.zst
vs --since a/vm.img b/vm.img inc.tar.gz
vs a/vm.img full.txz
export TMPDIR=$TMP/spool
mkdir "$TMPDIR" out

# only_image DIR: DIR holds vm.img and its index, nothing else.
only_image() {
	local left
	left=$(ls -A "$1" | grep -v -x -e vm.img -e .vm.img.vmsync-index || true)
	[ -z "$left" ] || fail "left in $1: $left"
	[ -z "$(ls -A "$TMPDIR")" ] || fail "left in TMPDIR: $(ls -A "$TMPDIR")"
}

# (1) A full archive through a pipe, then again.
zstd -q -d -c full.tar.zst | zstd -q -c | vs - out/ || fail "full: exit $?"
same out/vm.img a/vm.img
[ "$(data_ranges out/vm.img)" = "$(data_ranges a/vm.img)" ] ||
	fail "holes: $(data_ranges out/vm.img) against $(data_ranges a/vm.img)"
vs --verify out/vm.img || fail "the index is not trusted"
only_image out
STATS=$(cat full.tar.zst | "$VMSYNC" --json --no-progress - out/) ||
	fail "rerun: exit $?"
[ "$(stat_of written_bytes)" -eq 0 ] || fail "rerun wrote bytes"
only_image out

# (2) An incremental archive through a pipe, and onto a file not its base.
cp --sparse=always out/vm.img other.img
cat inc.tar.gz | vs - out/ || fail "incremental: exit $?"
same out/vm.img b/vm.img
vs --verify out/vm.img || fail "applied: the index is not trusted"
only_image out
mkdir wrong
cp --sparse=always b/vm.img wrong/vm.img
sum=$(md5sum < wrong/vm.img)
cat inc.tar.gz | must_fail 3 "^vmsync: .*vm.img" "$VMSYNC" - wrong/
[ "$(md5sum < wrong/vm.img)" = "$sum" ] || fail "the wrong base was written"

# (3) A regular file redirected: read where it is.  Into a directory not
# made yet with TMPDIR missing, a stream has nowhere to be held (exit 3);
# the file needs no copy.
rm -rf out
{ cat full.txz || true; } | TMPDIR=$TMP/none must_fail 3 "standard input" "$VMSYNC" - out/
rm -rf out
TMPDIR=$TMP/none "$VMSYNC" - out/ < full.txz || fail "redirected: exit $?"
same out/vm.img a/vm.img
only_image out

# (4) Bad streams: one line naming "-", exit 2, nothing written.
cp --sparse=always b/vm.img out/vm.img
sum=$(md5sum < out/vm.img)
head -c 100000 /dev/urandom | must_fail 2 "^vmsync: -: " "$VMSYNC" - out/
head -c 300000 full.tar.zst | must_fail 2 "^vmsync: -: " "$VMSYNC" - out/
must_fail 2 "^vmsync: -: " "$VMSYNC" - out/ < /dev/null
[ "$(md5sum < out/vm.img)" = "$sum" ] || fail "a bad stream wrote the target"
only_image out
must_fail 1 "given twice" "$VMSYNC" - - out/ < full.txz

# (5) A stream that does not fit where it is held: exit 3, one line.
mnt=$(mkext4 64M)
mkdir "$mnt/d"
head -c $((96 * M)) /dev/urandom > big.img
vs big.img big.tar
{ cat big.tar || true; } | must_fail 3 "standard input" "$VMSYNC" - "$mnt/d/"
[ -z "$(ls -A "$mnt/d")" ] || fail "left in $mnt/d: $(ls -A "$mnt/d")"
[ "$(df --output=used -B1M "$mnt" | tail -1)" -lt 8 ] ||
	fail "the spool's space was not given back: $(df -h "$mnt")"
echo "ok"
