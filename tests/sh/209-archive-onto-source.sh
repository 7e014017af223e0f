#!/usr/bin/env bash
# Proves: an archive is never written over one of its own sources.  DEST
# is renamed over at the end, so "vmsync --archive=tar disk.img disk.img"
# (a typo for disk.tar) would replace the image with its archive.  Like a
# sync whose target is its source, such a run is refused with one line
# naming DEST and exit status 1, before anything is read or written: the
# image keeps its bytes, its inode and its holes, and no temporary file is
# left.  The same for a DEST that is another name of a source (a hard or
# symbolic link), for any of several sources, and for an incremental
# archive onto its SRC or its --since base.  A DEST that is not a source
# is still written.
. "$VMSYNC_TOP/tests/functions.sh"
requires tar

cd "$TMP" || fail "cd $TMP"
"$HOLES" make disk.img 8M 0:1M:1 6M:64K:2
"$HOLES" make other.img 8M 2M:1M:3
cp --sparse=always disk.img keep.img
ino=$(stat -c %i disk.img)
ln disk.img hard.tar
ln -s disk.img sym.tar

# untouched: disk.img is as it was, and nothing was left beside it.
untouched() {
	cmp disk.img keep.img || fail "$*: disk.img changed"
	[ "$(stat -c %i disk.img)" = "$ino" ] || fail "$*: disk.img replaced"
	diff <(data_ranges keep.img) <(data_ranges disk.img) ||
		fail "$*: disk.img lost its holes"
	[ -L sym.tar ] || fail "$*: sym.tar replaced"
	left=$(find . -name '*.tmp-*' | tr '\n' ' ')
	[ -z "$left" ] || fail "$*: left behind: $left"
}

must_fail 1 "^vmsync: disk\.img: target is the source itself$" \
	vs --archive=tar disk.img disk.img
untouched "onto itself"
must_fail 1 "^vmsync: disk\.img: target is the source itself$" \
	vs --archive=tar.zst other.img disk.img disk.img
untouched "onto the second source"
must_fail 1 "^vmsync: \./disk\.img: target is the source disk\.img itself$" \
	vs --archive=tar disk.img ./disk.img
untouched "by another path"
must_fail 1 "^vmsync: hard\.tar: target is the source disk\.img itself$" \
	vs disk.img hard.tar
untouched "onto a hard link"
must_fail 1 "^vmsync: sym\.tar: target is the source disk\.img itself$" \
	vs other.img disk.img sym.tar
untouched "onto a symbolic link"
must_fail 1 "^vmsync: hard\.tar: target is the source disk\.img itself$" \
	vs --since=other.img disk.img hard.tar
untouched "incremental onto its SRC"
must_fail 1 "^vmsync: sym\.tar: target is the source disk\.img itself$" \
	vs --since=disk.img other.img sym.tar
untouched "incremental onto its base"

# Any other DEST is written as before.
vs disk.img out.tar
mkdir x
tar -xf out.tar -C x
cmp x/disk.img keep.img || fail "out.tar: disk.img differs"
untouched "a plain export"
