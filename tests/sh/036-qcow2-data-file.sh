#!/usr/bin/env bash
# Proves: images whose guest data lives in an external data file
# (data_file=..., and data_file_raw=on) are synced in the guest view, the
# data file found relative to the image's directory (vmsync runs from
# elsewhere): equal to qemu-img convert, holding only qemu-img map's data,
# zero writes and discards (kept in the qcow2 metadata) reading as zeros.
# The file view is refused with exit 2 and a one-line error that says to
# use -O raw, and so is a missing data file (both views); a refusal leaves
# an earlier target untouched and creates none.
# (qemu-img 7.2 itself opens a relative data file name relative to its
# working directory, so the qemu-img oracles run in the image's directory.)
. "$VMSYNC_TOP/tests/functions.sh"
. "$VMSYNC_TOP/tests/qcow2.sh"
requires_btrfs
requires qemu-img qemu-io jq

mnt=$(mkbtrfs 2G)
src=$TMP/src
mkdir "$src" "$mnt/empty"
cd "$src" || fail "cd $src"
qemu-img create -q -f qcow2 -o data_file=df.raw df.qcow2 64M
qemu-img create -q -f qcow2 -o data_file=dfr.raw,data_file_raw=on dfr.qcow2 64M
for img in df dfr; do
	qemu-io -f qcow2 -c 'write -P 1 0 1M' -c 'write -z 2M 1M' \
		-c 'write -P 2 5M 64k' -c 'discard 5M 64k' \
		-c 'write -P 3 7M 64k' -c 'write -z 7M 4k' \
		-c 'write -P 4 1000001 3001' -c 'write -P 5 66060288 1048576' \
		$img.qcow2 >/dev/null
	qemu-img info --output=json -f qcow2 $img.qcow2 |
		jq -e '.["format-specific"].data["data-file"] == "'$img'.raw"' \
		>/dev/null || fail "$img.qcow2 has no data file"
done

for img in df dfr; do
	(cd / && vs -q -O raw "$src/$img.qcow2" "$mnt/") ||
		fail "vmsync -O raw $img.qcow2"
	guest_ok "$img.qcow2" "$mnt/$img.raw" "$img.qcow2"
	cp --sparse=always "$mnt/$img.raw" "$TMP/$img.saved"
	(cd / && must_fail 2 "$img\\.qcow2.*-O raw" vs -q "$src/$img.qcow2" "$mnt/")
	[ ! -e "$mnt/$img.qcow2" ] || fail "$img: refused file view left a target"
	# The data file gone: refused in both views, the target untouched.
	mv $img.raw $img.raw.away
	(cd / && must_fail 2 "$img\\.raw" vs -q -O raw "$src/$img.qcow2" "$mnt/")
	(cd / && must_fail 2 "$img\\.(raw|qcow2)" vs -q "$src/$img.qcow2" "$mnt/empty/")
	mv $img.raw.away $img.raw
	cmp "$TMP/$img.saved" "$mnt/$img.raw" || fail "$img: refusal changed the target"
	[ -z "$(ls -A "$mnt/empty")" ] || fail "$img: refusal created $(ls -A "$mnt/empty")"
done
