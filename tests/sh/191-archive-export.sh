#!/usr/bin/env bash
# Proves: vmsync SRC... ARCHIVE (named .tar, .tar.gz, .tgz, .tar.zst,
# .tzst, .tar.xz or .txz, or --archive=FORMAT with "-" for stdout) writes one pax entry
# per image, named as a sync names its target, and sparse: GNU tar and
# bsdtar both extract a file byte-identical to the image with holes where
# it has holes, and a 64 MiB image holding 4 MiB of data makes an archive
# under 5 MiB.
#  - The entry keeps the image's permissions and mtime; the archive is
#    0600, and gzip/zstd/xz test their compressed streams as valid.
#  - A .tar.zst carries zstd's checksum: a byte flipped in data zstd
#    stored as it is fails zstd -t, bsdtar and an import (exit 2).
#  - A .tar.zst is a zstd frame for each 4 MiB of the archive, compressed
#    on every CPU; zstd, GNU tar and bsdtar read it as one stream.
#  - A qcow2 image is exported as the file (its qemu-img check passes and
#    it compares equal), or with -O raw as its guest disk NAME.raw
#    (byte-identical to qemu-img convert -O raw, and sparse).
#  - Several images make one archive; entry names must differ.
#  - A btrfs source is read through a clone that is not kept; a backup
#    generation that --list shows is exported as it is.
#  - Memory stays bounded: exporting 512 MiB of data stays under 150 MiB
#    of resident memory, into a .tar or a .tar.zst.
#  - Errors are one line with the documented exit code and leave no
#    archive and no temporary file: an unknown --archive format, "-"
#    without --archive, options of a sync, a --compress-level the
#    compressor does not have, a missing
#    directory, a missing source, ENOSPC mid-archive (an older archive
#    of that name stays as it was, also when the disk fills as a .tar.zst
#    is closed), a closed pipe on stdout; also for a .tar.zst, whose
#    frames are written by a thread of their own.
. "$VMSYNC_TOP/tests/functions.sh"
requires tar bsdtar gzip zstd xz qemu-img qemu-io jq
requires_btrfs

cd "$TMP" || fail "cd $TMP"
src=$TMP/disk.img
# 4 MiB of data in 64 MiB, at aligned and unaligned offsets.
"$HOLES" make "$src" 64M 0:1M:1 10M:2M:2 40000000:960K:3 67043328:64K:5
chmod 640 "$src"
touch -d @1600000000 "$src"

# check ARCHIVE NAME REF: GNU tar and bsdtar extract NAME from ARCHIVE
# byte-identical to REF, with REF's holes.
check() {
	local a=$1 name=$2 ref=$3 tool
	for tool in tar bsdtar; do
		rm -rf "$TMP/x"
		mkdir "$TMP/x"
		"$tool" -xf "$a" -C "$TMP/x" || fail "$tool -xf $a"
		cmp "$TMP/x/$name" "$ref" || fail "$tool: $a: $name differs from $ref"
		diff <(data_ranges "$ref") <(data_ranges "$TMP/x/$name") ||
			fail "$tool: $a: $name is not as sparse as $ref"
	done
}

# nothing_left DIR: no archive or temporary file in DIR.
nothing_left() {
	local left
	left=$(find "$1" -maxdepth 1 \( -name '*.tar*' -o -name '*.tgz*' \) | tr '\n' ' ')
	[ -z "$left" ] || fail "left behind: $left"
}

# (1) A raw image into .tar: sparse, small, metadata kept.
vs disk.img out.tar
check out.tar disk.img "$src"
size=$(stat -c %s out.tar)
[ "$size" -lt $((5 << 20)) ] || fail "archive of 4 MiB of data is $size bytes"
[ "$(tar -tf out.tar)" = disk.img ] || fail "entries: $(tar -tf out.tar)"
tar -tvf out.tar | grep -q '^-rw-r----- .* 67108864 ' ||
	fail "entry mode or size: $(tar -tvf out.tar)"
[ "$(stat -c %Y "$TMP/x/disk.img")" -eq 1600000000 ] || fail "mtime not kept"
[ "$(stat -c %a out.tar)" = 600 ] || fail "archive mode $(stat -c %a out.tar)"
nothing_left "$TMP/x"

# (2) Compressed, each checked by its own tool too.
vs disk.img out.tar.gz
vs disk.img out.tgz
vs disk.img out.tar.zst
vs disk.img out.tar.xz
vs disk.img out.tzst
vs disk.img out.txz
gzip -t out.tar.gz && gzip -t out.tgz || fail "gzip -t"
zstd -q -t out.tar.zst && zstd -q -t out.tzst || fail "zstd -t"
xz -t out.tar.xz && xz -t out.txz || fail "xz -t"
for a in out.tar.gz out.tgz out.tar.zst out.tzst out.tar.xz out.txz; do
	check "$a" disk.img "$src"
done
# A level given: gzip -9 and zstd -19 archives, valid and as sparse.
vs --compress-level=9 disk.img l9.tar.gz
vs --compress-level=19 disk.img l19.tar.zst
gzip -t l9.tar.gz && zstd -q -t l19.tar.zst || fail "leveled archives"
check l9.tar.gz disk.img "$src"
check l19.tar.zst disk.img "$src"
rm -f l9.tar.gz l19.tar.zst
# A .tar.zst carries zstd's checksum.  Random data is stored by zstd as it
# is, so a byte flipped there decodes without error unless the frame's
# checksum is checked: zstd -t, bsdtar and an import all find it.
head -c $((4 << 20)) /dev/urandom > rnd.img
truncate -s 8M rnd.img
vs rnd.img rnd.tar.zst
zstd -lv rnd.tar.zst 2>&1 | grep -q "Check: XXH64" ||
	fail "rnd.tar.zst has no checksum: $(zstd -lv rnd.tar.zst 2>&1)"
printf '\125' | dd of=rnd.tar.zst bs=1 conv=notrunc \
    seek=$(($(stat -c %s rnd.tar.zst) / 2)) 2>/dev/null
zstd -q -t rnd.tar.zst 2>/dev/null && fail "zstd -t took a damaged archive"
mkdir flipped
bsdtar -xf rnd.tar.zst -C flipped 2>/dev/null &&
	fail "bsdtar took a damaged archive"
rm -rf flipped
must_fail 2 "^vmsync: rnd.tar.zst: entry 'rnd.img' at offset [0-9]+: .*checksum" \
    vs rnd.tar.zst flipped/
[ ! -e flipped/rnd.img ] || fail "a damaged archive was imported"
rm -rf rnd.img rnd.tar.zst flipped
# --archive names the format whatever the file is called.
vs --archive=tar.zst disk.img out.bin
zstd -q -t out.bin || fail "--archive=tar.zst did not write zstd"
rm -f out.*

# (3) To stdout, into tar reading a pipe (no padding after the stream).
mkdir p1 p2 p3
vs --archive=tar disk.img - | tar -xf - -C p1
vs --archive=tar.zst disk.img - | zstd -dc | tar -xf - -C p2
vs --archive=tar.xz disk.img - | bsdtar -xf - -C p3
for d in p1 p2 p3; do
	cmp "$d/disk.img" "$src" || fail "stdout archive: $d differs"
	diff <(data_ranges "$src") <(data_ranges "$d/disk.img") ||
		fail "stdout archive: $d is not sparse"
done
vs --archive=tar.zst disk.img - > s.tar.zst
zstd -q -t s.tar.zst || fail "zstd -t of stdout"
rm -rf p1 p2 p3 s.tar.zst

# (4) qcow2: the file itself, or -O raw its guest disk.
qemu-img create -q -f qcow2 vm.qcow2 64M
qemu-io -f qcow2 -c 'write -P 0x11 0 1M' -c 'write -P 0x22 20M 2M' \
	-c 'write -P 0x33 50M 64k' -c 'discard 20M 1M' vm.qcow2 > /dev/null
vs vm.qcow2 q.tar
[ "$(tar -tf q.tar)" = vm.qcow2 ] || fail "qcow2 entry: $(tar -tf q.tar)"
for tool in tar bsdtar; do
	rm -rf x && mkdir x
	"$tool" -xf q.tar -C x
	qemu-img check -q x/vm.qcow2 || fail "$tool: extracted qcow2 fails check"
	qemu-img compare -q vm.qcow2 x/vm.qcow2 || fail "$tool: qcow2 differs"
	cmp vm.qcow2 x/vm.qcow2 || fail "$tool: qcow2 file differs"
done
qemu-img convert -O raw vm.qcow2 guest.ref
vs -O raw vm.qcow2 r.tar.gz
[ "$(tar -tf r.tar.gz)" = vm.raw ] || fail "-O raw entry: $(tar -tf r.tar.gz)"
for tool in tar bsdtar; do
	rm -rf x && mkdir x
	"$tool" -xf r.tar.gz -C x
	cmp guest.ref x/vm.raw || fail "$tool: guest disk differs"
	qemu-img compare -q -f qcow2 -F raw vm.qcow2 x/vm.raw ||
		fail "$tool: qemu-img compare of the guest disk"
	a=$(alloc x/vm.raw)
	[ "$a" -le $(((2 << 20) + (64 << 10))) ] ||
		fail "$tool: guest disk allocates $a bytes, written: 2 MiB + 64 KiB"
done
rm -f q.tar r.tar.gz

# (5) Several images in one archive, named as a sync names them.
vs -O raw disk.img vm.qcow2 two.tar
[ "$(tar -tf two.tar | tr '\n' ' ')" = "disk.img vm.raw " ] ||
	fail "entries: $(tar -tf two.tar)"
check two.tar disk.img "$src"
check two.tar vm.raw guest.ref
rm -f two.tar
mkdir sub
cp --sparse=always "$src" sub/disk.img
must_fail 1 "same entry name disk.img" vs disk.img sub/disk.img dup.tar
nothing_left "$TMP"

# (6) Errors: one line, the exit code, nothing left.
must_fail 1 "^vmsync: --archive 'zip'" vs --archive=zip disk.img -
[ ! -s "$TMP/stdout" ] || fail "wrote to stdout on a usage error"
must_fail 1 "^vmsync: DEST '-'.*--archive" vs disk.img -
[ ! -e ./- ] || fail "made a file named -"
for opt in -n -c --stats --json --snapshot --index=i --block-size=4K \
	--bwlimit=1M; do
	must_fail 1 "^vmsync: .*cannot be used when writing an archive" \
		vs "$opt" disk.img e.tar
done
must_fail 1 "^vmsync: --list cannot be used with --archive" \
	vs --list --archive=tar "$TMP"
# --compress-level: within the compressor's levels, not for a plain tar.
must_fail 1 "^vmsync: e.tar: --compress-level: an uncompressed archive has no level$" \
	vs --compress-level=3 disk.img e.tar
must_fail 1 "^vmsync: e.tar.gz: --compress-level 12: gzip takes 1 to 9$" \
	vs --compress-level=12 disk.img e.tar.gz
must_fail 1 "^vmsync: host:e.tar: an archive is written here" vs disk.img host:e.tar
must_fail 3 "^vmsync: $TMP/nodir/e.tar: cannot create the archive: No such file" \
	vs disk.img "$TMP/nodir/e.tar"
must_fail 3 "^vmsync: $TMP/disk.img/e.tar: cannot create the archive: Not a directory" \
	vs disk.img "$TMP/disk.img/e.tar"
must_fail 2 "^vmsync: missing.img: " vs disk.img missing.img e.tar.zst
nothing_left "$TMP"
# A full filesystem mid-archive: the old archive of that name stays.
mkdir small
mount -t tmpfs -o size=2M tmpfs small
cleanup_fn "umount -l '$TMP/small' 2>/dev/null"
echo old > small/e.tar
must_fail 3 "^vmsync: small/e.tar: .*No space left on device" vs disk.img small/e.tar
[ "$(cat small/e.tar)" = old ] || fail "ENOSPC: the old archive changed"
[ "$(ls small)" = e.tar ] || fail "ENOSPC: left $(ls small)"
# The same in a .tar.zst, whose frames are written by a thread of their
# own: random data does not shrink into the 2 MiB.  3 MiB fill the disk
# only while the archive is closed (they were once renamed over the old
# archive, cut, with exit 0), 6 MiB while it is written.
echo old > small/e.tar.zst
for mib in 3 6; do
	head -c $((mib << 20)) /dev/urandom > rnd.img
	must_fail 3 "^vmsync: small/e.tar.zst: .*No space left on device" \
	    vs rnd.img small/e.tar.zst
	[ "$(cat small/e.tar.zst)" = old ] ||
		fail "ENOSPC ($mib MiB): the old .tar.zst changed"
	[ "$(ls small | tr '\n' ' ')" = "e.tar e.tar.zst " ] ||
		fail "ENOSPC ($mib MiB): left $(ls small)"
done
# A reader that goes away: exit 3 (the error is about stdout).
set +o pipefail
vs --archive=tar disk.img - 2> "$TMP/err" | head -c 1000 > /dev/null
rc=${PIPESTATUS[0]}
set -o pipefail
[ "$rc" -eq 3 ] || fail "closed pipe: exit $rc"
grep -q "^vmsync: stdout: .*Broken pipe" "$TMP/err" || fail "closed pipe: $(cat "$TMP/err")"
set +o pipefail
vs --archive=tar.zst rnd.img - 2> "$TMP/err" | head -c 1000 > /dev/null
rc=${PIPESTATUS[0]}
set -o pipefail
[ "$rc" -eq 3 ] || fail "closed pipe (zstd): exit $rc"
grep -q "^vmsync: stdout: .*Broken pipe" "$TMP/err" ||
	fail "closed pipe (zstd): $(cat "$TMP/err")"
rm -f rnd.img

# (7) Memory: 512 MiB of data go through bounded buffers.
"$HOLES" make big.img 1G 0:256M:6 512M:256M:7
/usr/bin/time -f %M -o rss "$VMSYNC" --archive=tar big.img - |
	tar -xf - -O | cmp - big.img || fail "big.img through a pipe differs"
[ "$(cat rss)" -lt $((150 * 1024)) ] || fail "resident memory $(cat rss) KiB"
# Compressed on every CPU, a zstd frame for each 4 MiB of the archive:
# zstd, GNU tar and bsdtar read the frames as one stream; memory stays
# bounded.
/usr/bin/time -f %M -o rss "$VMSYNC" big.img big.tar.zst
[ "$(cat rss)" -lt $((150 * 1024)) ] || fail "resident memory (zstd) $(cat rss) KiB"
frames=$(zstd -lv big.tar.zst 2>&1 | awk '/^# Zstandard Frames:/ { print $4 }')
[ "${frames:-0}" -ge 128 ] || fail "big.tar.zst: ${frames:-no} frames"
zstd -dc big.tar.zst | tar -xf - -O | cmp - big.img ||
	fail "big.tar.zst (zstd -dc | tar) differs"
bsdtar -xOf big.tar.zst | cmp - big.img || fail "big.tar.zst (bsdtar) differs"
rm -f big.img big.tar.zst rss

# (8) btrfs: the source is read through a clone, which is not kept; a
# backup generation is exported as it is.
mnt=$(mkbtrfs 1G)
btrfs subvolume create "$mnt/vm" > /dev/null
btrfs subvolume create "$mnt/backup" > /dev/null
cp --sparse=always "$src" "$mnt/vm/disk.img"
vs -v "$mnt/vm/disk.img" bt.tar 2> "$TMP/err"
grep -q "not on btrfs\|reading the live image" "$TMP/err" &&
	fail "a btrfs source was read live: $(cat "$TMP/err")"
check bt.tar disk.img "$src"
[ -d "$mnt/vm/.vmsync" ] || fail "the btrfs source was not cloned"
left=$(find "$mnt/vm/.vmsync" -type f 2> /dev/null | tr '\n' ' ')
[ -z "$left" ] || fail "export left state behind: $left"
vs -q --snapshot "$mnt/vm/disk.img" "$mnt/backup/"
cp --sparse=always "$src" gen1.img
"$HOLES" fill "$mnt/vm/disk.img" 5M:64K:8
sleep 1.1
vs -q --snapshot "$mnt/vm/disk.img" "$mnt/backup/"
LIST=$("$VMSYNC" --list --json "$mnt/backup") || fail "--list: exit $?"
gen=$(printf '%s' "$LIST" | jq -r '.images[0].generations[0].path')
[ "$gen" != "$mnt/backup/disk.img" ] || fail "no snapshot generation: $LIST"
vs "$gen" gen.tar.zst
check gen.tar.zst disk.img gen1.img
vs "$mnt/backup/disk.img" live.tar
check live.tar disk.img "$mnt/vm/disk.img"
