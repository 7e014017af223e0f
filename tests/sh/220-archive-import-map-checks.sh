#!/usr/bin/env bash
# Proves: the checks of an archive's headers and maps run before anything
# is written, for every entry: (1) a pax 1.0 sparse entry whose only run
# goes past its size (libarchive drops that run from the entry's map, so
# the entry looks unsparse) is refused with one line, exit 2, and the
# existing target and its index unchanged; (2) a sparse map of more runs
# than vmsync holds is refused the same way; (3) a .tar.gz whose gzip
# trailer (CRC and length) is cut off is refused although the tar inside
# is whole; (4) a plain entry cut short is named in the error; (5) an
# archive cut between two entries (also a .tar.zst cut between frames)
# is refused, where it imported the first entry with exit 0.
. "$VMSYNC_TOP/tests/functions.sh"
requires python3 gzip zstd tar

cd "$TMP" || fail "cd $TMP"
MKSPARSE="python3 $VMSYNC_TOP/tests/helpers/mksparse.py"

head -c $((1 << 20)) /dev/urandom > vm.img
vs vm.img d/
cp d/vm.img keep.img
mkdir good && vs vm.img good/
index_before=$(find d -name '*vmsync*' -type f -exec md5sum {} + | sort)

refused() {		# refused ARCHIVE RE: one line, exit 2, nothing written
	must_fail 2 "^vmsync: $1: $2" vs "$1" d/
	cmp d/vm.img keep.img || fail "$1: the target changed"
	[ "$(find d -name '*vmsync*' -type f -exec md5sum {} + | sort)" = \
	    "$index_before" ] || fail "$1: the target's index changed"
	[ "$(ls d)" = vm.img ] || fail "$1: d/ holds $(ls d)"
	vs --verify d/vm.img > /dev/null 2>&1 || fail "$1: verify fails after"
}

# (1) The only run goes past the size: 4096 bytes in a file of 100.
$MKSPARSE past.tar vm.img 100 0:4096
refused past.tar "entry 'vm\.img' at offset 0: sparse map: data past the size at 0"
# A valid map of the same shape is imported (the generator is right).
$MKSPARSE ok.tar vm.img 8192 0:4096
vs ok.tar good/
cmp -n 4096 good/vm.img <(head -c 4096 /dev/zero | tr '\0' A) ||
	fail "ok.tar: wrong data"
[ "$(stat -c %s good/vm.img)" -eq 8192 ] || fail "ok.tar: wrong size"

# (2) One run more than vmsync holds.
$MKSPARSE many.tar vm.img $((16 << 20)) -$(((1 << 20) + 1))
refused many.tar "entry 'vm\.img' at offset 0: sparse map: more than 1048576 runs"

# (3) The gzip trailer cut off: the tar inside is whole.
vs vm.img full.tar.gz
head -c -8 full.tar.gz > notrailer.tar.gz
gzip -t notrailer.tar.gz 2>/dev/null && fail "notrailer.tar.gz tests good"
refused notrailer.tar.gz "offset [0-9]+ of the gzip stream, after the last entry: gzip: truncated"
vs full.tar.gz good/
cmp good/vm.img vm.img || fail "full.tar.gz: wrong import"

# (4) A plain (unsparse) entry cut short is named, with its header.
vs vm.img full.tar
head -c $((600 << 10)) full.tar > cut.tar
refused cut.tar "entry 'vm\.img' at offset 0: "

# (5) An archive cut between entries: libarchive ends there without a
# word, as tar's end-of-archive blocks are missing.  As a .tar.zst of
# frames (vmsync writes one for each 4 MiB), the cut can fall between
# frames and still decompress.  Nothing is imported, not even the first
# (a vm.img other than d/'s).
mkdir new
head -c $((1 << 20)) /dev/urandom > new/vm.img
head -c $((1 << 20)) /dev/urandom > vm2.img
vs new/vm.img vm2.img two.tar
first=$((512 * 3 + (1 << 20)))	# pax header, ustar header, vm.img's data
head -c "$first" two.tar > cut2.tar
tar -tf cut2.tar > /dev/null 2>&1 || fail "cut2.tar is not a tar to GNU tar"
refused cut2.tar "offset $first of the tar stream, after entry 1: the archive ends without its end-of-archive blocks"
{ head -c "$first" two.tar | zstd -q -c
  tail -c +$((first + 1)) two.tar | zstd -q -c; } > two.tar.zst
zstd -q -t two.tar.zst || fail "two.tar.zst"
head -c "$(head -c "$first" two.tar | zstd -q -c | wc -c)" two.tar.zst > cut2.tar.zst
zstd -q -t cut2.tar.zst || fail "cut2.tar.zst is not a whole zstd stream"
refused cut2.tar.zst "offset $first of the tar stream, after entry 1: the archive ends without"
vs two.tar.zst good/
cmp good/vm.img new/vm.img && cmp good/vm2.img vm2.img || fail "two.tar.zst: wrong import"
echo "ok"
