#!/usr/bin/env bash
# Proves: damaged, hostile and unsupported qcow2 images.
# Readable: an image with lazy refcounts whose writer was killed (dirty
# bit set, refcounts stale) syncs in both views, -v says "dirty", the
# guest disk is equal, the file-view target is as dirty as the source
# (qemu-img check gives the same verdict) and repairs to a clean image;
# an image with the corrupt bit syncs with exit 0 and a one-line warning
# saying "corrupt", content equal.
# Refused with exit 2 and a one-line error naming the image, in both views:
# an unknown incompatible feature bit ("feature"), LUKS and legacy AES
# encryption ("encrypted"), the hostile headers of FORMATS.md section 3
# (cluster_bits 22, l1_size 0x7fffffff, an unaligned L1 table offset,
# header_length 100, refcount_table_clusters 0, an L1 entry pointing to an
# unaligned L2 table or past the end of the file), and images cut short in
# the middle of their data.  Each refusal leaves the targets synced before
# from a good image of the same name -- with other data, so that any write
# would show -- unchanged: same bytes, same allocation, same index, same
# mtime; and a last good run trusts the index.
. "$VMSYNC_TOP/tests/functions.sh"
. "$VMSYNC_TOP/tests/qcow2.sh"
requires_btrfs
requires qemu-img qemu-io jq

mnt=$(mkbtrfs 2G)
src=$TMP/src
out=$mnt/out
mkdir "$src" "$out"

# --- Readable: dirty (lazy refcounts, writer killed).
img=$src/dirty.qcow2
qemu-img create -q -f qcow2 -o lazy_refcounts=on "$img" 16M
# (in a subshell: bash reports the killed job on stderr)
(qemu-io -f qcow2 -c 'write -P 0x5a 0 64k' -c 'write -P 0x5b 3M 1M' \
	-c "sigraise $(kill -l KILL)" "$img" >/dev/null 2>&1 || true) 2>/dev/null
qemu-img info --output=json -f qcow2 "$img" |
	jq -e '.["dirty-flag"] == true' >/dev/null || fail "dirty.qcow2 is not dirty"
for view in "" "-O raw"; do
	rc=0
	# shellcheck disable=SC2086
	vs -v --no-progress $view "$img" "$out/" 2> "$TMP/err" || rc=$?
	[ $rc -eq 0 ] || { cat "$TMP/err" >&2; fail "dirty image, view '$view': exit $rc"; }
	grep -qi dirty "$TMP/err" || fail "-v does not say the image is dirty"
done
guest_ok "$img" "$out/dirty.raw"
qemu-img compare -q -f qcow2 -F qcow2 "$img" "$out/dirty.qcow2" ||
	fail "dirty: file view differs"
rc_src=0 rc_tgt=0
qemu-img check -q -f qcow2 "$img" >/dev/null 2>&1 || rc_src=$?
qemu-img check -q -f qcow2 "$out/dirty.qcow2" >/dev/null 2>&1 || rc_tgt=$?
[ "$rc_src" -eq "$rc_tgt" ] || fail "dirty: qemu-img check $rc_src on the source, $rc_tgt on the target"
cp "$out/dirty.qcow2" "$TMP/repaired.qcow2"
qemu-img check -q -r all -f qcow2 "$TMP/repaired.qcow2" >/dev/null 2>&1 || true
qemu-img check -q -f qcow2 "$TMP/repaired.qcow2" || fail "dirty: target does not repair"
qemu-img compare -q -f qcow2 -F qcow2 "$img" "$TMP/repaired.qcow2" ||
	fail "dirty: repaired target differs"

# --- Readable with a warning: the corrupt bit.
img=$src/corrupt.qcow2
qemu-img create -q -f qcow2 "$img" 16M
qemu-io -f qcow2 -c 'write -P 0x11 0 1M' -c 'write -P 0x12 5M 64k' "$img" >/dev/null
poke "$img" 79 02
for view in "" "-O raw"; do
	rc=0
	# shellcheck disable=SC2086
	vs --no-progress $view "$img" "$out/" 2> "$TMP/err" || rc=$?
	[ $rc -eq 0 ] || { cat "$TMP/err" >&2; fail "corrupt bit, view '$view': exit $rc"; }
	grep -qi corrupt "$TMP/err" || fail "no warning about the corrupt bit"
	[ "$(wc -l < "$TMP/err")" -eq 1 ] || { cat "$TMP/err" >&2; fail "not a one-line warning"; }
done
guest_ok "$img" "$out/corrupt.raw"
qemu-img compare -q -f qcow2 -F qcow2 "$img" "$out/corrupt.qcow2" ||
	fail "corrupt: file view differs"
cmp "$img" "$out/corrupt.qcow2" || fail "corrupt: file view is not the file"

# --- Refusals.  The targets come from a good vm.qcow2 (pattern 0x31..);
# every bad vm.qcow2 is made from another good image (0x41.., other
# offsets), then damaged.
img=$src/vm.qcow2
qemu-img create -q -f qcow2 "$img" 16M
qemu-io -f qcow2 -c 'write -P 0x31 0 1M' -c 'write -P 0x32 8M 2M' "$img" >/dev/null
both_views "$img" "$out"
saved=$TMP/saved
cp -a --sparse=always "$out" "$saved"
data_ranges "$out/vm.qcow2" > "$TMP/vm.qcow2.ranges"
data_ranges "$out/vm.raw" > "$TMP/vm.raw.ranges"

good2() {	# good2 FILE [create options]: the other good image
	local f=$1
	shift
	qemu-img create -q -f qcow2 "$@" "$f" 16M
	qemu-io -f qcow2 -c 'write -P 0x41 64k 1M' -c 'write -P 0x42 4M 3M' \
		-c 'write -P 0x43 15M 1M' "$f" >/dev/null
}

unchanged() {
	local f
	for f in vm.qcow2 vm.raw .vm.qcow2.vmsync-index .vm.raw.vmsync-index; do
		cmp "$saved/$f" "$out/$f" || fail "$1: $f changed"
		[ "$(stat -c %y "$saved/$f")" = "$(stat -c %y "$out/$f")" ] ||
			fail "$1: $f touched"
	done
	data_ranges "$out/vm.qcow2" | diff "$TMP/vm.qcow2.ranges" - ||
		fail "$1: vm.qcow2 allocation changed"
	data_ranges "$out/vm.raw" | diff "$TMP/vm.raw.ranges" - ||
		fail "$1: vm.raw allocation changed"
	[ "$(ls -A "$out")" = "$(ls -A "$saved")" ] ||
		fail "$1: files in the target directory: $(ls -A "$out")"
}

refused() {	# refused CASE RE: the current vm.qcow2 is refused, no change
	echo "refusal: $1"
	must_fail 2 "vm\\.qcow2.*($2)|($2).*vm\\.qcow2" vs -q "$img" "$out/"
	must_fail 2 "vm\\.qcow2.*($2)|($2).*vm\\.qcow2" vs -q -O raw "$img" "$out/"
	unchanged "$1"
}

if [ ! -e "$saved/.vm.qcow2.vmsync-index" ] || [ ! -e "$saved/.vm.raw.vmsync-index" ]; then
	fail "no index files beside the targets: $(ls -A "$saved")"
fi

good2 "$img"
poke "$img" 79 20
refused "unknown incompatible feature" "feature"

# qemu-img times PBKDF2 for LUKS with the thread's CPU clock, and fails now
# and then here with "Unable to get accurate CPU usage": try a few times.
rm "$img"
for try in 1 2 3 4 5 6 7 8 9 10; do
	qemu-img create -q --object secret,id=s0,data=vmsync -f qcow2 \
		-o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10 \
		"$img" 16M 2>"$TMP/err" && break
	rm -f "$img"
	[ $try -lt 10 ] || { cat "$TMP/err" >&2; fail "cannot create a LUKS image"; }
done
qemu-io --object secret,id=s0,data=vmsync \
	--image-opts "driver=qcow2,file.filename=$img,encrypt.key-secret=s0" \
	-c 'write -P 0x77 0 64k' >/dev/null
refused "LUKS" "encrypted"

rm "$img"
qemu-img create -q --object secret,id=s0,data=vmsync -f qcow2 \
	-o encrypt.format=aes,encrypt.key-secret=s0 "$img" 16M
qemu-io --object secret,id=s0,data=vmsync \
	--image-opts "driver=qcow2,file.filename=$img,encrypt.key-secret=s0" \
	-c 'write -P 0x77 0 64k' >/dev/null
[ "$(be32 "$img" 32)" -eq 1 ] || fail "not a legacy AES image"
refused "AES" "encrypted"

hostile() {	# hostile CASE OFF BYTES...: good2, patched, refused
	local what=$1
	shift
	rm -f "$img"
	good2 "$img"
	poke "$img" "$@"
	refused "$what" "."
}
hostile "cluster_bits 22" 23 16
hostile "l1_size 0x7fffffff" 36 7f ff ff ff
hostile "unaligned L1 table offset" 40 00 00 00 00 00 03 00 08
hostile "header_length 100" 100 00 00 00 64
hostile "refcount_table_clusters 0" 56 00 00 00 00
good2 "$img"
l1=$(be64 "$img" 40)
hostile "L1 entry to an unaligned L2 table" "$l1" 80 00 00 00 00 04 02 00
hostile "L1 entry past the end of the file" "$l1" 80 00 00 00 10 00 00 00

# Cut short in the middle of the data: at a cluster boundary, and inside a
# cluster (qemu reads zeros past the end; vmsync must not).
rm "$img"
good2 "$img"
h=$(qmap_host "$img" $((5 * M)))
[ -n "$h" ] || fail "no host offset for guest 5M"
truncate -s "$h" "$img"
refused "cut at a cluster boundary" "."
rm "$img"
good2 "$img"
truncate -s $((h + 1000)) "$img"
refused "cut inside a cluster" "."
rm "$img"
good2 "$img"
truncate -s $(( $(stat -c %s "$img") - 4096 )) "$img"
refused "last 4 KiB cut off" "."

# A good image of the same name syncs again, with the index trusted.
rm "$img"
good2 "$img"
sync_stats "$img" "$out/"
[ "$(stat_of index)" = trusted ] || fail "index after the refusals: $(stat_of index)"
sync_stats -O raw "$img" "$out/"
[ "$(stat_of index)" = trusted ] || fail "raw index after the refusals: $(stat_of index)"
file_ok "$img" "$out/vm.qcow2"
guest_ok "$img" "$out/vm.raw"
