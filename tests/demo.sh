#!/bin/sh
# make demo: sync a generated 1 GiB sparse image into ./demo-backup/ twice,
# changing a little of it and discarding a range in between, and show the
# statistics of both runs.  Needs no root, loop device or mount.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
VMSYNC=$BUILD/vmsync
HOLES=$BUILD/tests/helpers/holes
work=demo-work
backup=demo-backup
rm -rf "$work" "$backup"
mkdir -p "$work" "$backup"
img=$work/disk.img

echo "== Generating $img: 1 GiB virtual, 64 MiB of data in 16 scattered pieces"
set --
i=0
while [ $i -lt 16 ]; do
	set -- "$@" "$((i * 61 + 7))M:4M:$((i + 1))"
	i=$((i + 1))
done
"$HOLES" make "$img" 1G "$@"
ls -ls "$img"

echo
echo "== First run: copies the data, leaves the holes as holes"
"$VMSYNC" --no-progress --stats "$img" "$backup/"

echo
echo "== Changing 3 small ranges (12 KiB in all) and discarding 4 MiB (as fstrim would)"
"$HOLES" fill "$img" 100M:4K:101 500M:4K:102 900M:4K:103
fallocate -p -o $((7 * 1048576)) -l $((4 * 1048576)) "$img"

echo
echo "== Second run: reads only allocated source bytes, writes what changed, punches the discard"
"$VMSYNC" --no-progress --stats "$img" "$backup/"

echo
cmp "$img" "$backup/disk.img"
echo "== $backup/disk.img is identical to $img"
du -h --apparent-size "$backup/disk.img" | sed 's/^/apparent size: /'
du -h "$backup/disk.img" | sed 's/^/allocated:     /'
