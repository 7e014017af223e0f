#!/bin/sh
# make demo: generate a 1 GiB sparse raw image, sync it into ./demo-backup/,
# change a few KiB and discard 4 MiB of it (as fstrim in the guest would),
# sync again, compare what both runs read, wrote and punched, and check that
# the backup equals the image.  Builds nothing (make demo builds first) and
# needs no root, loop device or mount.  Removes the previous demo first.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
VMSYNC=$BUILD/vmsync
HOLES=$BUILD/tests/helpers/holes
KiB=1024
MiB=1048576

if [ ! -x "$VMSYNC" ]; then
	echo "demo: $VMSYNC is missing; run 'make demo'" >&2
	exit 1
fi
[ -x "$HOLES" ] || HOLES=

work=demo-work
backup=demo-backup
img=$work/disk.img
rm -rf "$work" "$backup"
mkdir -p "$work" "$backup"

# put OFFSET LENGTH SEED: pseudo-random bytes at OFFSET (bytes; LENGTH a
# multiple of 4 KiB), written into the existing image.
put() {
	if [ -n "$HOLES" ]; then
		"$HOLES" fill "$img" "$1:$2:$3"
	else
		dd if=/dev/urandom of="$img" bs=4096 seek=$(($1 / 4096)) \
			count=$(($2 / 4096)) conv=notrunc status=none
	fi
}

# count FILE LABEL: the byte count of a --stats line, e.g. "written:".
count() {
	sed -n "s/^ *$2 .*(\([0-9]*\) bytes)\$/\1/p" "$1"
}

# human BYTES
human() {
	awk -v b="$1" 'BEGIN {
		if (b >= 1073741824) printf "%.2f GiB", b / 1073741824
		else if (b >= 1048576) printf "%.2f MiB", b / 1048576
		else if (b >= 1024) printf "%.2f KiB", b / 1024
		else printf "%d B", b }'
}

# sync_run OUT: sync the image with --stats, show the statistics, keep
# them in OUT.
sync_run() {
	if ! "$VMSYNC" --no-progress --stats "$img" "$backup/" > "$1"; then
		cat "$1"
		echo "demo: vmsync failed" >&2
		exit 1
	fi
	cat "$1"
}

# allocated FILE: bytes the file occupies on disk
allocated() {
	echo $(( $(du -k "$1" | cut -f1) * KiB ))
}

echo "== Generating $img: 1 GiB virtual, 64 MiB of data in 16 scattered pieces"
truncate -s 1G "$img"
i=0
while [ $i -lt 16 ]; do
	put $(((i * 61 + 7) * MiB)) $((4 * MiB)) $((i + 1))
	i=$((i + 1))
done
echo "   apparent size $(human "$(wc -c < "$img")"), allocated $(human "$(allocated "$img")")"

echo
echo "== First run: reads the 64 MiB of data, writes it, leaves the holes as holes"
sync_run "$work/run1.txt"

echo
echo "== Changing the image: 8 KiB inside the data at 70 MiB, 4 KiB in a hole"
echo "   at 500 MiB, and discarding the 4 MiB piece at 7 MiB"
put $((70 * MiB + 100 * KiB)) $((8 * KiB)) 101
put $((500 * MiB)) $((4 * KiB)) 102
if ! fallocate -p -o $((7 * MiB)) -l $((4 * MiB)) "$img" 2>/dev/null; then
	echo "   (cannot punch holes here: writing zeros instead, which vmsync"
	echo "   treats as a hole too)"
	dd if=/dev/zero of="$img" bs=$MiB seek=7 count=4 conv=notrunc status=none
fi

echo
echo "== Second run: reads the data, finds the changes with the index, writes"
echo "   only the changed sectors and punches the discarded range"
sync_run "$work/run2.txt"

echo
echo "== Comparison"
printf '   %-20s %14s %14s\n' "" "first run" "second run"
for label in "read from source:" "read from target:" "written:" "punched:"; do
	a=$(count "$work/run1.txt" "$label")
	b=$(count "$work/run2.txt" "$label")
	if [ -z "$a" ] || [ -z "$b" ]; then
		echo "demo: no '$label' line in the --stats output" >&2
		exit 1
	fi
	printf '   %-20s %14s %14s\n' "$label" "$(human "$a")" "$(human "$b")"
done
printf '   %-20s %14s %14s\n' "index:" \
	"$(sed -n 's/^ *index: *//p' "$work/run1.txt")" \
	"$(sed -n 's/^ *index: *//p' "$work/run2.txt")"

echo
if ! cmp "$img" "$backup/disk.img"; then
	echo "demo: FAILED: $backup/disk.img differs from $img" >&2
	exit 1
fi
echo "== $backup/disk.img is identical to $img (cmp)"
echo "   image:  allocated $(human "$(allocated "$img")")"
echo "   backup: allocated $(human "$(allocated "$backup/disk.img")")," \
	"index $backup/.disk.img.vmsync-index:" \
	"$(human "$(wc -c < "$backup/.disk.img.vmsync-index")")"
