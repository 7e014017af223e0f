#!/usr/bin/env bash
# Proves: a qcow2 image whose persistent bitmap claims a table larger than
# any qemu writes (16M entries, 128 MiB; qemu caps a bitmap's data at
# 512 MiB, 8 MiB of table at 512-byte clusters) is refused in the file
# view, which reads the bitmap tables, with exit 2 and one line naming the
# image, and nothing is written.  The refusal printed nothing: the run
# exited 0, its JSON status 0, and no target was made.
. "$VMSYNC_TOP/tests/functions.sh"
. "$VMSYNC_TOP/tests/qcow2.sh"
requires qemu-img qemu-io

cd "$TMP" || fail "cd $TMP"
qemu-img create -q -f qcow2 b.qcow2 64M
qemu-img bitmap --add -f qcow2 b.qcow2 bm0
qemu-io -f qcow2 -c 'write -P 1 0 1M' b.qcow2 > /dev/null

# The bitmaps extension (0x23852875) among those after the 112-byte header.
pos=112 dir=
while :; do
	type=$(be32 b.qcow2 "$pos")
	len=$(be32 b.qcow2 $((pos + 4)))
	[ "$type" -ne 0 ] || break
	if [ "$type" -eq $((0x23852875)) ]; then
		dir=$(be64 b.qcow2 $((pos + 24)))
		break
	fi
	pos=$((pos + 8 + (len + 7) / 8 * 8))
done
[ -n "$dir" ] || fail "no bitmaps extension in b.qcow2"
# The directory entry's table size (u32 at 8): 16M + 1 entries.
poke b.qcow2 $((dir + 8)) 01 00 00 01

mkdir out
must_fail 2 "b\\.qcow2: .*bitmap table" vs -q b.qcow2 out/
[ -z "$(ls -A out)" ] || fail "the refusal left $(ls -A out)"
echo "ok"
