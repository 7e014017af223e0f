#!/usr/bin/env bash
# Proves: libarchive and libnbd are loaded only when an archive or an
# image read through qemu needs them, so a plain sync does not pay for
# loading them (and the libraries they bring) at start:
#  - vmsync is not linked with libarchive, libnbd, libxml2 or gnutls;
#  - where neither can be loaded (an empty file stands for each, first in
#    LD_LIBRARY_PATH), a sync still works and writes an equal copy;
#  - an export then fails with one line naming the archive and libarchive
#    (exit 5, as for a library missing), and writes nothing; an import (exit 2) likewise; reading a
#    .vmdk fails with one line naming the image and libnbd (exit 2);
#  - with the libraries there, the archive exported exports and imports.
. "$VMSYNC_TOP/tests/functions.sh"
requires ldd qemu-img

linked=$(ldd "$VMSYNC")
for lib in libarchive libnbd libxml2 libgnutls; do
	case $linked in
	*"$lib"*) fail "vmsync is linked with $lib: $linked" ;;
	esac
done

img=$TMP/vm.raw
"$HOLES" make "$img" 16M 0:1M:1 8M:64K:2
vs "$img" "$TMP/full.tar"
mkdir "$TMP/good"
vs "$TMP/full.tar" "$TMP/good/"
same "$img" "$TMP/good/vm.raw"

nolib=$TMP/nolib
mkdir "$nolib"
: > "$nolib/libarchive.so.13"
: > "$nolib/libnbd.so.0"
export LD_LIBRARY_PATH=$nolib

vs "$img" "$TMP/copy.raw"
same "$img" "$TMP/copy.raw"

must_fail 5 "out.tar: archives need libarchive .*libarchive.so.13" \
	vs "$img" "$TMP/out.tar"
[ -z "$(ls "$TMP" | grep '^out\.tar')" ] || fail "an export left $(ls "$TMP")"
mkdir "$TMP/in"
must_fail 2 "full.tar: archives need libarchive" vs "$TMP/full.tar" "$TMP/in/"
[ -z "$(ls "$TMP/in")" ] || fail "an import wrote $(ls "$TMP/in")"

qemu-img convert -f raw -O vmdk "$img" "$TMP/vm.vmdk"
must_fail 2 "vm.vmdk: reading .*needs libnbd.*libnbd.so.0" \
	vs -O raw "$TMP/vm.vmdk" "$TMP/vmdk.raw"
[ ! -e "$TMP/vmdk.raw" ] || fail "a vmdk read without libnbd wrote a target"
