#!/usr/bin/env bash
# Proves: backing chains.  A chain of three qcow2 images -- a 1 MiB base, a
# 4 MiB v2 (compat=0.10) middle, an 8 MiB top, so that each backing file is
# shorter than its overlay -- with data, zero writes and discards masking
# the layers below; and a qcow2 overlay of a raw base of odd size.  Run from
# another directory, so backing names are resolved relative to the image.
# Guest view of each overlay equals qemu-img convert of it (read through
# the chain, zeros past a short backing file) and holds only qemu-img map's
# data; the file view of each layer synced into one directory gives a
# target chain whose top passes qemu-img check and compares equal to the
# source's.  Refused with exit 2 and a one-line error, in both views,
# leaving the target directory empty: a missing backing file, a backing
# file without a recorded format, and a loop (a backed by b backed by a).
. "$VMSYNC_TOP/tests/functions.sh"
. "$VMSYNC_TOP/tests/qcow2.sh"
requires_btrfs
requires qemu-img qemu-io jq

mnt=$(mkbtrfs 2G)
src=$TMP/src
out=$mnt/out
mkdir "$src" "$out"
cd "$src" || fail "cd $src"
qemu-img create -q -f qcow2 small.qcow2 1M
qemu-io -f qcow2 -c 'write -P 0x11 0 1M' small.qcow2 >/dev/null
qemu-img create -q -f qcow2 -o compat=0.10 -b small.qcow2 -F qcow2 mid.qcow2 4M
qemu-io -f qcow2 -c 'write -P 0x22 64k 64k' -c 'write -z 128k 64k' \
	-c 'write -P 0x23 1000k 100k' -c 'write -P 0x24 3M 4k' mid.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2 8M
qemu-io -f qcow2 -c 'write -P 0x33 192k 64k' -c 'discard 256k 64k' \
	-c 'write -z 3M 4k' -c 'write -P 0x34 7M 1M' -c 'write -z 512k 8k' \
	top.qcow2 >/dev/null
# A raw base of 3 MiB + 512 bytes under a 6 MiB qcow2 overlay.
{ head -c $((3 * M)) /dev/urandom; head -c 512 /dev/zero | tr '\0' 'x'; } > rbase.raw
qemu-img create -q -f qcow2 -b rbase.raw -F raw rov.qcow2 6M
qemu-io -f qcow2 -c 'write -P 0x44 1M 64k' -c 'write -z 2M 64k' \
	-c 'write -P 0x45 3M 1M' rov.qcow2 >/dev/null
# Depth 2 is read through: some range of top must come from small.qcow2.
qemu-img map --output=json -f qcow2 top.qcow2 |
	jq -e '[.[] | select(.depth == 2 and .data)] | length > 0' >/dev/null ||
	fail "the chain does not reach its base"
cd /

for img in top mid rov; do
	vs -q -O raw "$src/$img.qcow2" "$out/" || fail "vmsync -O raw $img"
	guest_ok "$src/$img.qcow2" "$out/$img.raw"
done

for layer in small.qcow2 mid.qcow2 top.qcow2 rbase.raw rov.qcow2; do
	vs -q "$src/$layer" "$out/" || fail "vmsync $layer"
done
same "$src/rbase.raw" "$out/rbase.raw"
for img in small mid top rov; do
	file_ok "$src/$img.qcow2" "$out/$img.qcow2"
done
chain=$(qemu-img info --output=json --backing-chain -f qcow2 "$out/top.qcow2" |
	jq -r '[.[].filename] | join(" ")')
[ "$chain" = "$out/top.qcow2 $out/mid.qcow2 $out/small.qcow2" ] ||
	fail "target chain: $chain"

# Refusals.  Each must leave the (empty) target directory empty.
bad=$TMP/bad
empty=$mnt/empty
mkdir "$bad" "$empty"
refused() {	# refused RE IMG: exit 2 in both views, nothing created
	must_fail 2 "$1" vs -q -O raw "$2" "$empty/"
	must_fail 2 "$1" vs -q "$2" "$empty/"
	[ -z "$(ls -A "$empty")" ] || fail "$2: refusal left $(ls -A "$empty")"
}

cp "$src/top.qcow2" "$bad/"
refused 'mid\.qcow2' "$bad/top.qcow2"	# its backing file is missing
cp "$src/mid.qcow2" "$bad/"
refused 'small\.qcow2' "$bad/top.qcow2"	# the backing file's backing file
refused 'small\.qcow2' "$bad/mid.qcow2"
rm "$bad"/*

# No recorded format: qemu-img 7.2 refuses to write such an image (create
# and rebase -u both need -F), so turn the backing-format extension, the
# first one at header_length, into an unknown one.
cp "$src/small.qcow2" "$src/top.qcow2" "$bad/"
qemu-img create -q -f qcow2 -b small.qcow2 -F qcow2 "$bad/nofmt.qcow2"
hl=$(be32 "$bad/nofmt.qcow2" 100)
[ "$(od -An -tx1 -j "$hl" -N 4 "$bad/nofmt.qcow2" | tr -d ' ')" = e2792aca ] ||
	fail "no backing format extension at $hl"
poke "$bad/nofmt.qcow2" "$hl" 12 34 56 78
qemu-img info --output=json "$bad/nofmt.qcow2" |
	jq -e '.["backing-filename-format"] == null' >/dev/null ||
	fail "the backing format is still recorded"
refused 'nofmt\.qcow2.*format' "$bad/nofmt.qcow2"
rm "$bad"/*

# A loop, made with rebase -u.
qemu-img create -q -f qcow2 "$bad/a.qcow2" 4M
qemu-img create -q -f qcow2 -b a.qcow2 -F qcow2 "$bad/b.qcow2"
qemu-img rebase -u -b b.qcow2 -F qcow2 "$bad/a.qcow2"
refused '[ab]\.qcow2' "$bad/a.qcow2"
refused '[ab]\.qcow2' "$bad/b.qcow2"
# A loop of one.
qemu-img create -q -f qcow2 "$bad/self.qcow2" 4M
qemu-img rebase -u -b self.qcow2 -F qcow2 "$bad/self.qcow2"
refused 'self\.qcow2' "$bad/self.qcow2"
