#!/usr/bin/env bash
# Proves: vmdk images with a descriptor -- monolithicFlat, and split
# extents twoGbMaxExtentSparse and twoGbMaxExtentFlat (5 GiB, three extent
# files, data across an extent boundary) -- are synced with -O raw: the
# target is the guest disk (qemu-img compare; cmp for the small one) with
# the guest's holes; after qemu-io writes 64 KiB and zeroes 1 MiB the next
# run writes only the 64 KiB and punches the zeroed range; an unchanged
# run writes nothing.  The extent files follow the --backing-dir policy:
# one in another directory is refused (exit 2, one line naming the image
# and the extent) and read with --backing-dir; an absolute name elsewhere
# and a symbolic link leading out are refused.  A missing extent file: one
# line naming the image and the extent, exit 2.  A descriptor is parsed
# strictly: RDONLY, ZERO, an unknown createType, a missing parent
# (parentFileNameHint; chains: 205-foreign-backing), a line that is nothing
# known, and a sparse file of
# capacity 0 (qemu would read the descriptor embedded in it and open the
# files it names, here a secret file) are refused naming the image, exit
# 2, nothing written; so is a daemon found holding a file vmsync did not
# give it.  No qemu-storage-daemon nor its socket directory is left
# behind.
. "$VMSYNC_TOP/tests/functions.sh"
requires qemu-img qemu-io qemu-storage-daemon jq python3

M=1048576
K=1024
export TMPDIR=$TMP/tmpd
mkdir "$TMPDIR"
vm=$TMP/vm
mkdir "$vm"

no_daemon_left() {
	[ -z "$(ls -A "$TMPDIR")" ] || fail "$1: left $(ls -A "$TMPDIR")"
	local p
	p=$(sed -n 's/^vmsync: debug: qemu-storage-daemon pid //p' \
		"$TMP/err" 2>/dev/null || true)
	for q in $p; do
		[ ! -e "/proc/$q" ] ||
			grep -q '^[0-9]* ([^)]*) Z' "/proc/$q/stat" ||
			fail "$1: qemu-storage-daemon $q left running"
	done
}

# run ARGS: vmsync --json, the daemon's pid noted in $TMP/err.
run() {
	STATS=$(VMSYNC_DEBUG_QSD_PID=1 "$VMSYNC" --json --no-progress "$@" \
		2> "$TMP/err") || fail "vmsync $*: exit $?: $(cat "$TMP/err")"
}

check_synced() {	# IMAGE TARGET: the target is the guest disk
	local exp=$TMP/expected.raw
	rm -f "$exp"
	qemu-img convert -f vmdk -O raw "$1" "$exp"
	qemu-img compare -q -f vmdk -F raw "$1" "$2" ||
		fail "$1: qemu-img compare differs"
	[ "$(data_ranges "$2")" = "$(data_ranges "$exp")" ] ||
		fail "$1: target data $(data_ranges "$2"), guest data" \
		    "$(data_ranges "$exp")"
	rm -f "$exp"
}

# name SUBFORMAT SIZE
while read -r name sub size; do
	img=$vm/$name.vmdk
	out=$TMP/out-$name
	size_m=$(( $(numfmt --from=iec "$size") / M ))
	mkdir "$out"
	qemu-img create -q -f vmdk -o subformat="$sub" "$img" "$size"
	head -c 21 "$img" | grep -qx "# Disk DescriptorFile" ||
		fail "$sub: qemu-img made no descriptor"
	qemu-io -f vmdk -c "write -P 1 0 1M" -c "write -P 2 40M 2M" \
		-c "write -P 3 $((size_m - 1))M 1M" "$img" > /dev/null
	if [ "$size" = 5G ]; then	# across the first extent boundary
		qemu-io -f vmdk -c "write -P 4 2047M 2M" -c "write -P 6 4G 64k" \
			"$img" > /dev/null
	fi
	run -O raw "$img" "$out/"
	target=$out/$name.raw
	[ "$(ls "$out")" = "$name.raw" ] || fail "$name: $(ls "$out")"
	check_synced "$img" "$target"
	[ "$size" = 5G ] || {
		qemu-img convert -f vmdk -O raw "$img" "$TMP/full.raw"
		same "$TMP/full.raw" "$target"
		rm "$TMP/full.raw"
	}
	no_daemon_left "$name"
	qemu-io -f vmdk -c "write -P 5 1M 64k" -c "write -z 40M 1M" \
		"$img" > /dev/null
	run -O raw "$img" "$out/"
	w=$(stat_of written_bytes)
	[ "$w" -ge $((64 * K)) ] && [ "$w" -le $((72 * K)) ] ||
		fail "$name: incremental run wrote $w bytes"
	[ "$(stat_of punched_bytes)" -ge "$M" ] ||
		fail "$name: punched $(stat_of punched_bytes)"
	check_synced "$img" "$target"
	run -O raw "$img" "$out/"
	[ "$(stat_of written_bytes)" -eq 0 ] ||
		fail "$name: unchanged run wrote $(stat_of written_bytes)"
	no_daemon_left "$name"
done <<EOF
flat monolithicFlat 64M
split twoGbMaxExtentSparse 5G
splitflat twoGbMaxExtentFlat 5G
EOF
ls "$vm"/split-s00[123].vmdk "$vm"/splitflat-f00[123].vmdk > /dev/null ||
	fail "split images have no three extent files: $(ls "$vm")"

mkdir "$TMP/none"
nothing_written() {
	[ -z "$(ls -A "$TMP/none")" ] || fail "$1: wrote $(ls -A "$TMP/none")"
	no_daemon_left "$1"
}

# A missing extent file.
cp "$vm/split.vmdk" "$vm/gone.vmdk"
sed -i 's/"split-s00\([123]\)\.vmdk"/"gone-s00\1.vmdk"/' "$vm/gone.vmdk"
cp "$vm/split-s001.vmdk" "$vm/gone-s001.vmdk"
cp "$vm/split-s003.vmdk" "$vm/gone-s003.vmdk"
must_fail 2 "^vmsync: $vm/gone.vmdk: extent file 'gone-s002.vmdk': No such file or directory\$" \
	vs -O raw "$vm/gone.vmdk" "$TMP/none/"
nothing_written "missing extent"

# An extent file in another directory: refused like a backing file, then
# read with --backing-dir.
other=$TMP/other
mkdir "$other"
qemu-img create -q -f vmdk -o subformat=monolithicFlat "$other/moved.vmdk" 8M
qemu-io -f vmdk -c "write -P 7 1M 1M" "$other/moved.vmdk" > /dev/null
sed 's#"moved-flat.vmdk"#"../other/moved-flat.vmdk"#' "$other/moved.vmdk" \
	> "$vm/moved.vmdk"
grep -q '"../other/moved-flat.vmdk"' "$vm/moved.vmdk" || fail "sed: moved"
must_fail 2 "^vmsync: $vm/moved.vmdk: extent file '\\.\\./other/moved-flat\\.vmdk' refused: not in the image's directory nor beneath a --backing-dir\$" \
	vs -O raw "$vm/moved.vmdk" "$TMP/none/"
nothing_written "extent elsewhere"
mkdir "$TMP/outm"
vs -q -O raw --backing-dir "$other" "$vm/moved.vmdk" "$TMP/outm/" ||
	fail "--backing-dir: exit $?"
qemu-img convert -f vmdk -O raw "$other/moved.vmdk" "$TMP/moved.raw"
same "$TMP/moved.raw" "$TMP/outm/moved.raw"

# An absolute name elsewhere, and a link in the image's directory that
# leads out: a secret file is never read.
head -c 1M /dev/urandom > "$other/secret"
desc() {	# desc FILE CREATETYPE EXTENT-LINE...
	local f=$1 t=$2
	shift 2
	{
		printf '# Disk DescriptorFile\nversion=1\nCID=12345678\n'
		printf 'parentCID=ffffffff\ncreateType="%s"\n\n' "$t"
		printf '# Extent description\n'
		printf '%s\n' "$@"
		printf '\nddb.adapterType = "ide"\n'
	} > "$f"
}
desc "$vm/abs.vmdk" monolithicFlat "RW 2048 FLAT \"$other/secret\" 0"
must_fail 2 "^vmsync: $vm/abs.vmdk: extent file '$other/secret' refused: not in the image's directory" \
	vs -O raw "$vm/abs.vmdk" "$TMP/none/"
ln -s "$other/secret" "$vm/link-flat.vmdk"
desc "$vm/link.vmdk" monolithicFlat 'RW 2048 FLAT "link-flat.vmdk" 0'
must_fail 2 "^vmsync: $vm/link.vmdk: extent file 'link-flat\\.vmdk' refused: " \
	vs -O raw "$vm/link.vmdk" "$TMP/none/"
nothing_written "outside names"

# What qemu would read otherwise than written, or what is not known.
cp "$vm/flat-flat.vmdk" "$vm/x-flat.vmdk"
bad_desc() {	# bad_desc RE CREATETYPE LINE...
	local re=$1
	shift
	desc "$vm/bad.vmdk" "$@"
	must_fail 2 "^vmsync: $vm/bad.vmdk: $re" vs -O raw "$vm/bad.vmdk" \
		"$TMP/none/"
	nothing_written "bad descriptor: $re"
}
bad_desc "vmdk descriptor line 8: extent access 'RDONLY' is not read by qemu" \
	monolithicFlat 'RDONLY 131072 FLAT "x-flat.vmdk" 0'
bad_desc "vmdk descriptor line 9: extent type 'ZERO' is not supported" \
	monolithicFlat 'RW 131072 FLAT "x-flat.vmdk" 0' 'RW 2048 ZERO'
bad_desc "vmdk descriptor line 8: no offset for a FLAT extent" \
	monolithicFlat 'RW 131072 FLAT "x-flat.vmdk"'
bad_desc "vmdk descriptor line 8: bad extent size" \
	monolithicFlat 'RW 99999999999999999999999 FLAT "x-flat.vmdk" 0'
bad_desc "vmdk descriptor line 9: not a setting, an extent or a comment" \
	monolithicFlat 'RW 131072 FLAT "x-flat.vmdk" 0' 'hello world'
bad_desc "vmdk descriptor: createType 'monolithicSparse' is not supported" \
	monolithicSparse 'RW 131072 FLAT "x-flat.vmdk" 0'
bad_desc "backing file 'base\\.vmdk': No such file or directory\$" \
	monolithicFlat 'RW 131072 FLAT "x-flat.vmdk" 0' \
	'parentFileNameHint="base.vmdk"'

# A sparse file of capacity 0 makes qemu read the descriptor embedded in
# it instead, which may name any file: refused, as the image and as an
# extent.
qemu-img create -q -f vmdk "$vm/evil.vmdk" 1M
python3 - "$vm/evil.vmdk" "$other/secret" <<'PY'
import struct, sys
with open(sys.argv[1], 'r+b') as f:
    h = f.read(512)
    doff, dsize = struct.unpack_from('<QQ', h, 28)
    f.seek(12)
    f.write(struct.pack('<Q', 0))
    d = ('# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\n'
         'createType="monolithicFlat"\n# Extent description\n'
         'RW 2048 FLAT "%s" 0\n' % sys.argv[2]).encode()
    f.seek(doff * 512)
    f.write(d + b'\0' * (dsize * 512 - len(d)))
PY
must_fail 2 "^vmsync: $vm/evil.vmdk: a sparse vmdk header of capacity 0 " \
	vs -O raw "$vm/evil.vmdk" "$TMP/none/"
cp "$vm/evil.vmdk" "$vm/evil-s001.vmdk"
desc "$vm/evil2.vmdk" twoGbMaxExtentSparse 'RW 2048 SPARSE "evil-s001.vmdk"'
must_fail 2 "^vmsync: $vm/evil2.vmdk: extent file 'evil-s001.vmdk': a sparse vmdk header of capacity 0 " \
	vs -O raw "$vm/evil2.vmdk" "$TMP/none/"
# A flat file as a SPARSE extent is no sparse extent.
desc "$vm/notsparse.vmdk" twoGbMaxExtentSparse 'RW 2048 SPARSE "x-flat.vmdk"'
must_fail 2 "^vmsync: $vm/notsparse.vmdk: extent file 'x-flat.vmdk': not a hosted sparse vmdk extent\$" \
	vs -O raw "$vm/notsparse.vmdk" "$TMP/none/"
nothing_written "capacity 0"

# Whatever qemu opened beyond the files vmsync gave it (a header rewritten
# between vmsync's check and qemu's open would do it; here a wrapper
# holds a secret file open): refused once the export is up.
printf '#!/bin/sh\nexec 9< "%s"\nexec qemu-storage-daemon "$@"\n' \
	"$other/secret" > "$TMP/qsd-wrap"
chmod +x "$TMP/qsd-wrap"
VMSYNC_QSD=$TMP/qsd-wrap must_fail 2 "^vmsync: $vm/flat.vmdk: qemu-storage-daemon opened a file vmsync did not give it .*: refused\$" \
	vs -O raw "$vm/flat.vmdk" "$TMP/none/"
nothing_written "foreign file in the daemon"
