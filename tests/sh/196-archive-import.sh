#!/usr/bin/env bash
# Proves: vmsync ARCHIVE DIR/ (ARCHIVE a .tar, .tar.gz, .tgz, .tar.zst,
# .tzst, .tar.xz or .txz) syncs each regular-file entry into DIR/ENTRY exactly like a
# sync from a raw image: content equal, holes where the entry has holes,
# the index written beside it, only what differs written onto an existing
# file, and nothing at all on a rerun.
#  - Archives made by vmsync (sparse pax), GNU tar --sparse (old GNU
#    format), GNU tar --format=pax -S (pax 1.0), bsdtar (not sparse: zero
#    blocks become holes) and zstd as its own compressor all import.
#  - An archive of several files makes several targets, one JSON entry
#    each, locally or pushed to host:DIR/; the entry's permissions and
#    mtime are the target's.
#  - Hostile or damaged archives are refused with one line naming the
#    archive, the entry and its header's offset, exit 2, and nothing is
#    written anywhere (an existing target stays as it was): names with a
#    "/", "..", ".", an index's name, no name; a directory, a symlink, a hard
#    link; two files of one name; a truncated archive, a damaged .tar.gz (its CRC is checked);
#    sparse maps that overlap or run past the size; a huge declared size;
#    an incremental archive (first entry NAME.vmsync-delta) is never
#    imported as a plain file.
. "$VMSYNC_TOP/tests/functions.sh"
requires tar bsdtar gzip zstd xz python3 jq qemu-img

cd "$TMP" || fail "cd $TMP"
# 4 MiB of data in 64 MiB, at aligned and unaligned offsets.
"$HOLES" make disk.img 64M 0:1M:1 10M:2M:2 40000000:960K:3 67043328:64K:5
chmod 640 disk.img
touch -d @1600000000 disk.img

# no_more_data REF FILE: FILE has data only where REF has.
no_more_data() {
	local f
	f=$(python3 - "$1" "$2" <<'EOF'
import os, sys
def runs(p):
    fd = os.open(p, os.O_RDONLY); size = os.fstat(fd).st_size; out = []; pos = 0
    while pos < size:
        try: d = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError: break
        h = os.lseek(fd, d, os.SEEK_HOLE); out.append((d, h)); pos = h
    return out
ref, f = runs(sys.argv[1]), runs(sys.argv[2])
bad = [r for r in f if not any(a <= r[0] and r[1] <= b for a, b in ref)]
print(bad[0] if bad else "")
EOF
)
	[ -z "$f" ] || fail "$2 holds data at $f where $1 has a hole"
}

# imported ARCHIVE DIR NAME REF: DIR/NAME equals REF, as sparse, indexed.
imported() {
	same "$2/$3" "$4"
	no_more_data "$4" "$2/$3"
	[ -f "$2/.$3.vmsync-index" ] || fail "$2/$3: no index"
}

# (1) vmsync's own archive into an empty directory, then again: nothing.
vs disk.img out.tar
sync_stats out.tar new/
imported out.tar new disk.img disk.img
[ "$(stat_of source)" = out.tar/disk.img ] || fail "source $(stat_of source)"
written=$(stat_of written_bytes)
sync_stats disk.img fromraw/
[ "$written" -eq "$(stat_of written_bytes)" ] ||
	fail "first import wrote $written bytes, a raw sync $(stat_of written_bytes)"
sync_stats out.tar new/
[ "$(stat -c %a new/disk.img)" = 640 ] || fail "mode $(stat -c %a new/disk.img)"
[ "$(stat -c %Y new/disk.img)" -eq 1600000000 ] || fail "mtime not kept"
sync_stats out.tar new/
[ "$(stat_of written_bytes)" -eq 0 ] && [ "$(stat_of punched_bytes)" -eq 0 ] ||
	fail "rerun wrote $(stat_of written_bytes), punched $(stat_of punched_bytes)"
same new/disk.img disk.img

# (2) A newer generation onto the old copy: only what changed is written,
# what the guest discarded is punched.
cp --sparse=always disk.img disk2.img
printf 'changed!' | dd of=disk2.img bs=1 seek=$((10 << 20)) conv=notrunc 2>/dev/null
fallocate -p -o 40000000 -l 960K disk2.img 2>/dev/null ||
	dd if=/dev/zero of=disk2.img bs=1K seek=$((40000000 / 1024)) count=960 conv=notrunc 2>/dev/null
mkdir gen2
cp disk2.img gen2/disk.img
tar -C gen2 --format=pax -S -cf - disk.img | zstd -q > gen2.tar.zst
sync_stats gen2.tar.zst new/
imported gen2.tar.zst new disk.img disk2.img
[ "$(stat_of written_bytes)" -eq 4096 ] ||
	fail "one changed sector: wrote $(stat_of written_bytes) bytes"
[ "$(stat_of punched_bytes)" -ge $((900 << 10)) ] ||
	fail "discarded range: punched $(stat_of punched_bytes) bytes"
sync_stats gen2.tar.zst new/
[ "$(stat_of written_bytes)" -eq 0 ] || fail "rerun of gen2 wrote bytes"

# (3) Other tools' archives, sparse or not, compressed or not.
tar --sparse -cf gnu.tar disk.img
tar --format=pax -S -cf pax.tar disk.img
bsdtar -cf bsd.tar disk.img
tar -cf - disk.img | gzip > plain.tar.gz
# gzip members one after the other, as pigz or cat make them.
tar -cf whole.tar disk.img
{ head -c 5000000 whole.tar | gzip; tail -c +5000001 whole.tar | gzip; } > members.tar.gz
tar --sparse -cf - disk.img | zstd -q > gnu.tar.zst
vs disk.img vs.tgz
vs disk.img vs.tar.xz
vs disk.img vs.tzst
vs disk.img vs.txz
for a in gnu.tar pax.tar bsd.tar plain.tar.gz members.tar.gz gnu.tar.zst \
    vs.tgz vs.tar.xz vs.tzst vs.txz; do
	rm -rf "d-$a"
	sync_stats "$a" "d-$a/"
	imported "$a" "d-$a" disk.img disk.img
	sync_stats "$a" "d-$a/"
	[ "$(stat_of written_bytes)" -eq 0 ] || fail "$a: rerun wrote bytes"
done

# (4) Several files: several targets.
printf 'second\n' > small.txt
tar --sparse -cf two.tar disk.img small.txt
sync_stats two.tar multi/
[ "$(printf '%s' "$STATS" | jq '.images | length')" -eq 2 ] ||
	fail "two entries: $STATS"
imported two.tar multi disk.img disk.img
cmp multi/small.txt small.txt || fail "second entry differs"
# Pushed to a remote DEST the same way.
mkdir pushed
rvs two.tar "host:$TMP/pushed/"
same pushed/disk.img disk.img
cmp pushed/small.txt small.txt || fail "pushed: second entry differs"

# (5) Hostile and damaged archives.  Each run goes into run/d/ beside an
# existing target, which must not change, and nothing else may appear.
python3 - <<'EOF'
import io, tarfile
def entry(name, data=b"x" * 1000, kind=tarfile.REGTYPE, pax=None, size=None,
          link=""):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.linkname = link
    ti.size = len(data) if kind == tarfile.REGTYPE and size is None else (size or 0)
    if pax:
        ti.pax_headers = pax
    return ti, data if kind == tarfile.REGTYPE else None
def archive(path, *entries):
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as t:
        for ti, data in entries:
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
archive("dotdot.tar", entry("../x"))
archive("slash.tar", entry("ok"), entry("a/b"))
archive("hidden.tar", entry(".disk.img.vmsync-index"))
archive("dot.tar", entry("."))
archive("dir.tar", entry("sub", kind=tarfile.DIRTYPE))
archive("symlink.tar", entry("x", kind=tarfile.SYMTYPE, link="/etc/passwd"))
archive("hardlink.tar", entry("ok"), entry("x", kind=tarfile.LNKTYPE, link="ok"))
archive("delta.tar", entry("disk.img.vmsync-delta"), entry("disk.img"))
archive("twice.tar", entry("x"), entry("x"))
def sparse(name, realsize, runs, stored):
    m = ",".join("%d,%d" % r for r in runs)
    return entry(name, b"y" * stored, pax={"GNU.sparse.size": str(realsize),
        "GNU.sparse.numblocks": str(len(runs)), "GNU.sparse.map": m})
archive("overlap.tar", sparse("x", 100000, [(0, 8192), (4096, 8192)], 16384))
archive("order.tar", sparse("x", 100000, [(50000, 4096), (0, 4096)], 8192))
archive("past.tar", sparse("x", 10000, [(0, 4096), (8192, 4096)], 8192))
archive("hugesparse.tar", sparse("x", 9000000000000000000, [(0, 4096)], 4096))
archive("huge.tar", entry("x", b"", pax={"size": "9000000000000000000"}))
EOF
# An empty name cannot be made with tarfile: blank the name field.
python3 - <<'EOF'
data = bytearray(open("dotdot.tar", "rb").read())
# The pax header names the file too: drop both names.
for off in range(0, len(data), 512):
    if data[off + 257:off + 262] == b"ustar":
        data[off:off + 100] = bytes(100)
        s = sum(data[off:off + 148]) + 8 * 32 + sum(data[off + 156:off + 512])
        data[off + 148:off + 156] = b"%06o\0 " % s
data = data.replace(b"path=../x\n", b"path=...x\n")
open("noname.tar", "wb").write(bytes(data))
EOF
vs disk.img big.tar
cp big.tar trunc.tar
truncate -s $((3 << 20)) trunc.tar
tar -cf - disk.img | gzip > damaged.tar.gz
size=$(stat -c %s damaged.tar.gz)
printf '\377\000\377\000\377\000\377\000' |
	dd of=damaged.tar.gz bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
gzip -t damaged.tar.gz 2>/dev/null && fail "damaged.tar.gz still tests good"
vs disk.img big.tar.zst
head -c $(( $(stat -c %s big.tar.zst) / 2 )) big.tar.zst > trunc.tar.zst

mkdir run
vs out.tar run/d/
cp run/d/disk.img keep.img
before=$(cd run && find . -printf '%p %s %T@\n' | sort)

refused() {		# refused ARCHIVE RE: one line, exit 2, nothing written
	local a=$1 re=$2
	must_fail 2 "^vmsync: $a: $re" vs "$a" run/d/
	after=$(cd run && find . -printf '%p %s %T@\n' | sort)
	[ "$after" = "$before" ] || fail "$a: run/ changed:
$after"
	[ ! -e x ] || fail "$a: wrote x"
	cmp run/d/disk.img keep.img || fail "$a: target changed"
}
refused dotdot.tar "entry '\.\./x' at offset 0: not a plain file name"
refused slash.tar "entry 'a/b' at offset [0-9]+: not a plain file name"
refused hidden.tar "entry '\.disk\.img\.vmsync-index' at offset 0: not a plain"
refused dot.tar "entry '\.' at offset 0: not a plain file name"
refused noname.tar "entry '' at offset 0: no name"
refused dir.tar "entry 'sub/?' at offset 0: "
refused symlink.tar "entry 'x' at offset 0: not a regular file"
refused hardlink.tar "entry 'x' at offset [0-9]+: not a regular file"
refused twice.tar "entry 'x' at offset [0-9]+: a second file of that name \\(the first at offset 0\\)"
refused overlap.tar "entry 'x' at offset 0: sparse map: data blocks overlap or are out of order at 4096"
refused order.tar "entry 'x' at offset 0: sparse map: data blocks overlap or are out of order at 0"
refused past.tar "entry 'x' at offset 0: sparse map: data past the size at 8192"
refused hugesparse.tar "entry 'x' at offset 0: declared size 9000000000000000000 is out of range"
refused huge.tar "entry 'x' at offset 0: declared size 9000000000000000000 is out of range"
refused trunc.tar "entry 'disk.img' at offset 0: Truncated tar archive"
refused trunc.tar.zst "entry ('disk.img'|[0-9]+) at offset [0-9]+: "
refused damaged.tar.gz "entry ('disk.img'|[0-9]+) at offset [0-9]+: "
# An incremental archive is never imported as plain files: this one is
# handed to the delta code, which finds it malformed.
refused delta.tar "(incremental archive|not a valid incremental archive)"
# An incremental archive is applied alone.
must_fail 1 "^vmsync: delta.tar: incremental archive; it is applied alone" \
	vs delta.tar disk.img run/d/
# A file named like an archive is still copied as it is with --format.
vs --format=raw out.tar asfile/
cmp asfile/out.tar out.tar || fail "--format=raw: not copied as it is"
