#!/usr/bin/env bash
# Proves: backing and external data files are followed only when they are
# regular files directly in the directory of the image named on the
# command line, or beneath a --backing-dir DIR (repeatable).  Refused with
# exit 2 and one line naming the image, the stored name and why, in both
# views, creating no target: a relative name climbing out ("../base/..."),
# an absolute name elsewhere (also a raw "backing file" that is a secret
# file), a symbolic link in the image's directory that leads out, a file in
# a subdirectory, a block device node and a FIFO in the image's directory,
# and an external data file elsewhere.  A stored name with control
# characters is shown with them escaped (\\ooo).  With --backing-dir the
# same chains are read and equal qemu-img convert.  On a server, a pull
# follows only the server's own --backing-dir (given by its forced
# command), and one outside --root is refused.
. "$VMSYNC_TOP/tests/functions.sh"
. "$VMSYNC_TOP/tests/qcow2.sh"
requires_btrfs
requires qemu-img qemu-io jq mkfifo mknod

mnt=$(mkbtrfs 1G)
src=$mnt/src
vm=$src/vm
base=$src/base
outside=$mnt/outside
out=$mnt/out
empty=$mnt/empty
mkdir -p "$vm/sub" "$base" "$outside" "$out" "$empty"

qemu-img create -q -f qcow2 "$base/base.qcow2" 4M
qemu-io -f qcow2 -c 'write -P 0x11 0 4M' "$base/base.qcow2" >/dev/null
head -c $((1 * M)) /dev/urandom > "$outside/secret"
cp "$base/base.qcow2" "$vm/sub/b.qcow2"

refused() {	# refused RE IMG [OPTS]: exit 2 in both views, nothing created
	local re=$1 img=$2
	shift 2
	must_fail 2 "$re" vs -q "$@" -O raw "$img" "$empty/"
	must_fail 2 "$re" vs -q "$@" "$img" "$empty/"
	[ -z "$(ls -A "$empty")" ] || fail "$img: refusal left $(ls -A "$empty")"
}

# Outside the image's directory: refused, then read with --backing-dir.
qemu-img create -q -f qcow2 -b ../base/base.qcow2 -F qcow2 "$vm/rel.qcow2"
qemu-io -f qcow2 -c 'write -P 0x22 1M 64k' "$vm/rel.qcow2" >/dev/null
qemu-img create -q -f qcow2 -b "$base/base.qcow2" -F qcow2 "$vm/abs.qcow2"
qemu-io -f qcow2 -c 'write -P 0x23 2M 64k' "$vm/abs.qcow2" >/dev/null
refused "rel\\.qcow2.*'\\.\\./base/base\\.qcow2'.*refused" "$vm/rel.qcow2"
refused "abs\\.qcow2.*base/base\\.qcow2'.*refused" "$vm/abs.qcow2"
for img in rel abs; do
	vs -q -O raw --backing-dir "$base" "$vm/$img.qcow2" "$out/" ||
		fail "vmsync --backing-dir, $img.qcow2"
	guest_ok "$vm/$img.qcow2" "$out/$img.raw"
done
# Repeatable: any of the directories will do.
vs -q -O raw --backing-dir "$outside" --backing-dir "$src" \
	"$vm/rel.qcow2" "$out/" || fail "vmsync with two --backing-dir"
guest_ok "$vm/rel.qcow2" "$out/rel.raw"

# A secret file as a raw backing file: never read.
qemu-img create -q -f qcow2 -u -b "$outside/secret" -F raw "$vm/secret.qcow2" 1M
refused "secret\\.qcow2.*outside/secret'.*refused" "$vm/secret.qcow2"

# A link in the image's directory that leads out, even to an allowed one.
ln -s ../base/base.qcow2 "$vm/link.qcow2"
qemu-img create -q -f qcow2 -u -b link.qcow2 -F qcow2 "$vm/vialink.qcow2" 4M
refused "vialink\\.qcow2.*'link\\.qcow2'.*refused" "$vm/vialink.qcow2"
refused "vialink\\.qcow2.*'link\\.qcow2'.*refused" "$vm/vialink.qcow2" \
	--backing-dir "$base"
ln -s "$outside/secret" "$vm/secret-link.raw"
qemu-img create -q -f qcow2 -u -b secret-link.raw -F raw "$vm/vialink2.qcow2" 1M
refused "vialink2\\.qcow2.*'secret-link\\.raw'.*refused" "$vm/vialink2.qcow2"

# A subdirectory of the image's directory is not the directory itself.
qemu-img create -q -f qcow2 -u -b sub/b.qcow2 -F qcow2 "$vm/insub.qcow2" 4M
refused "insub\\.qcow2.*'sub/b\\.qcow2'.*refused" "$vm/insub.qcow2"
vs -q -O raw --backing-dir "$vm" "$vm/insub.qcow2" "$out/" ||
	fail "vmsync --backing-dir of a subdirectory"
guest_ok "$vm/insub.qcow2" "$out/insub.raw"

# Device nodes and FIFOs, even in the image's directory.
dev=$(mkloopdev "$outside/secret")
mknod "$vm/disk.raw" b "$(stat -c '0x%t' "$dev")" "$(stat -c '0x%T' "$dev")"
qemu-img create -q -f qcow2 -u -b disk.raw -F raw "$vm/ondev.qcow2" 1M
refused "ondev\\.qcow2.*'disk\\.raw'.*not a regular file" "$vm/ondev.qcow2"
mkfifo "$vm/fifo.raw"
qemu-img create -q -f qcow2 -u -b fifo.raw -F raw "$vm/onfifo.qcow2" 1M
refused "onfifo\\.qcow2.*'fifo\\.raw'.*not a regular file" "$vm/onfifo.qcow2"

# Control characters in a stored name are not printed.
qemu-img create -q -f qcow2 -u -b "$(printf 'x\033[31mred\rname.qcow2')" \
	-F qcow2 "$vm/ctrl.qcow2" 4M
refused "ctrl\\.qcow2.*'x\\\\033\\[31mred\\\\015name\\.qcow2'" "$vm/ctrl.qcow2"
! grep -q "$(printf '\033')" "$TMP/stderr" || fail "escape byte printed"

# An external data file elsewhere: refused, then read with --backing-dir.
qemu-img create -q -f qcow2 -o data_file="$outside/df.raw" "$vm/df.qcow2" 4M
qemu-io -f qcow2 -c 'write -P 0x33 0 1M' "$vm/df.qcow2" >/dev/null
must_fail 2 "df\\.qcow2.*outside/df\\.raw'.*refused" vs -q -O raw "$vm/df.qcow2" "$empty/"
[ -z "$(ls -A "$empty")" ] || fail "data file refusal left $(ls -A "$empty")"
vs -q -O raw --backing-dir "$outside" "$vm/df.qcow2" "$out/" ||
	fail "vmsync --backing-dir, df.qcow2"
guest_ok "$vm/df.qcow2" "$out/df.raw"

# A missing --backing-dir is a usage error.
must_fail 1 "nowhere.*--backing-dir" vs -q -O raw --backing-dir "$mnt/nowhere" \
	"$vm/rel.qcow2" "$empty/"

# A server: a pull follows only the server's --backing-dir, beneath --root.
root=$mnt/root
mkdir -p "$root/images" "$root/bases"
cp "$base/base.qcow2" "$root/bases/"
qemu-img create -q -f qcow2 -b ../bases/base.qcow2 -F qcow2 "$root/images/top.qcow2"
qemu-io -f qcow2 -c 'write -P 0x44 3M 64k' "$root/images/top.qcow2" >/dev/null
forced() {	# forced NAME [SERVER OPTIONS]: a forced command
	local f=$TMP/$1
	shift
	printf '#!/bin/sh\nexec "%s" --server --root="%s" %s\n' \
		"$VMSYNC" "$root" "$*" > "$f"
	chmod +x "$f"
}
forced plain
forced allowed "--backing-dir=$root/bases"
forced escaping "--backing-dir=$outside"
must_fail 2 "top\\.qcow2.*bases/base\\.qcow2'.*refused" \
	"$VMSYNC" -q -e "$TMP/plain" -O raw host:images/top.qcow2 "$empty/"
must_fail 2 "top\\.qcow2.*bases/base\\.qcow2'.*refused" \
	"$VMSYNC" -q -e "$TMP/plain" --backing-dir "$root/bases" -O raw \
	host:images/top.qcow2 "$empty/"
must_fail 1 "outside" \
	"$VMSYNC" -q -e "$TMP/escaping" -O raw host:images/top.qcow2 "$empty/"
[ -z "$(ls -A "$empty")" ] || fail "refused pulls left $(ls -A "$empty")"
"$VMSYNC" -q -e "$TMP/allowed" -O raw host:images/top.qcow2 "$out/" ||
	fail "pull with the server's --backing-dir"
guest_ok "$root/images/top.qcow2" "$out/top.raw"
