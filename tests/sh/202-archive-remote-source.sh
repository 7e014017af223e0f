#!/usr/bin/env bash
# Proves: vmsync host:path ARCHIVE exports a remote image (through
# vmsync --server, the protocol of a pull) into a local archive: GNU tar
# and bsdtar extract it byte-identical to the image, as sparse; with -O raw
# the entry is the guest disk of a qcow2, named as a sync names it; a remote source and a
# local one make one archive; "-" writes it to stdout.  The data is pulled
# into a private scratch directory beside the archive (or in $TMPDIR for
# stdout) that is gone afterwards, also when the pull fails (a missing
# remote image: one line, exit 2, no archive).  A --root server keeps the
# client out of anything outside its root.
. "$VMSYNC_TOP/tests/functions.sh"
requires tar bsdtar zstd qemu-img qemu-io jq

cd "$TMP" || fail "cd $TMP"
mkdir remote out scratch
src=$TMP/remote/disk.img
"$HOLES" make "$src" 64M 0:1M:1 10M:2M:2 40000000:960K:3 67043328:64K:5
qemu-img create -q -f qcow2 remote/vm.qcow2 32M
qemu-io -c 'write -P 7 1M 3M' -c 'write -P 9 20M 64K' remote/vm.qcow2 >/dev/null
# qemu-img allocates the first 4 KiB of a raw file it makes: cp makes the
# reference as sparse as the guest disk is.
qemu-img convert -O raw remote/vm.qcow2 vm.tmp
cp --sparse=always vm.tmp vm.ref
"$HOLES" make local.img 16M 4M:1M:4

# check ARCHIVE NAME REF: GNU tar and bsdtar extract NAME from ARCHIVE
# byte-identical to REF, with REF's holes.
check() {
	local a=$1 name=$2 ref=$3 tool
	for tool in tar bsdtar; do
		rm -rf x
		mkdir x
		"$tool" -xf "$a" -C x || fail "$tool -xf $a"
		cmp "x/$name" "$ref" || fail "$tool: $a: $name differs from $ref"
		diff <(data_ranges "$ref") <(data_ranges "x/$name") ||
			fail "$tool: $a: $name is not as sparse as $ref"
	done
}
# no_scratch DIR: no scratch directory left in DIR.
no_scratch() {
	[ -z "$(find "$1" -maxdepth 1 -name '.vmsync-fetch-*')" ] ||
		fail "scratch left in $1: $(ls -A "$1")"
}

# A remote raw image, and a local one beside it, into one archive.
rvs "host:$src" local.img out/both.tar.zst
zstd -q -t out/both.tar.zst || fail "zstd -t"
[ "$(tar -tf out/both.tar.zst | sort | tr '\n' ' ')" = "disk.img local.img " ] ||
	fail "entries: $(tar -tf out/both.tar.zst)"
check out/both.tar.zst disk.img "$src"
check out/both.tar.zst local.img local.img
size=$(stat -c %s out/both.tar.zst)
[ "$size" -lt $((6 << 20)) ] || fail "archive of 5 MiB of data is $size bytes"
no_scratch out
# The source side is untouched (no index, no clone beside it).
[ "$(ls -A remote | tr '\n' ' ')" = "disk.img vm.qcow2 " ] ||
	fail "remote directory now holds: $(ls -A remote)"

# The guest disk of a remote qcow2, named as a sync names it (vm.raw).
rvs -O raw "host:$TMP/remote/vm.qcow2" out/vm.tar
[ "$(tar -tf out/vm.tar)" = vm.raw ] || fail "entries: $(tar -tf out/vm.tar)"
check out/vm.tar vm.raw vm.ref
# Without -O raw: the qcow2 file itself, which qemu-img checks.
rvs "host:$TMP/remote/vm.qcow2" out/vmf.tar
rm -rf x && mkdir x && tar -xf out/vmf.tar -C x
qemu-img check -q x/vm.qcow2 || fail "exported qcow2 does not check"
qemu-img compare -q x/vm.qcow2 vm.ref || fail "exported qcow2 differs"
no_scratch out

# To stdout: the scratch goes to $TMPDIR.
TMPDIR=$TMP/scratch rvs --archive=tar "host:$src" - > out/stdout.tar ||
	fail "export to stdout"
check out/stdout.tar disk.img "$src"
no_scratch scratch

# A missing remote image: one line, exit 2, nothing left.
must_fail 2 "missing.img" rvs "host:$TMP/remote/missing.img" out/m.tar
[ ! -e out/m.tar ] || fail "archive left after a failed pull"
no_scratch out

# A server confined by --root (a forced command) refuses a path outside it.
cat > forced <<EOS
#!/bin/sh
exec "$VMSYNC" --server --root="$TMP/out"
EOS
chmod +x forced
must_fail 1 "^vmsync: host: .*outside" "$VMSYNC" -e "$TMP/forced" \
	"host:$src" out/r.tar
[ ! -e out/r.tar ] || fail "archive left after a refused pull"
no_scratch out
echo "remote archive export: ok"
