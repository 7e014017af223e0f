#!/usr/bin/env bash
# Proves: an incremental archive is read with the same checks as an
# import: a .tar.gz whose deflated data was damaged (gzip's CRC no longer
# matches, libarchive's gzip reader does not look) or whose trailer was cut
# off is refused with one line naming the offset where reading stopped
# (and the entry), exit 2, and the base left byte-identical with its
# index trusted; the undamaged archive then applies.
. "$VMSYNC_TOP/tests/functions.sh"
requires python3 gzip

cd "$TMP" || fail "cd $TMP"
mkdir g0 g1 restore
head -c $((4 << 20)) /dev/urandom > g0/vm.img
cp g0/vm.img g1/vm.img
dd if=/dev/urandom of=g1/vm.img bs=64K seek=10 count=16 conv=notrunc \
	status=none
vs --since g0/vm.img g1/vm.img inc.tar.gz
# One bit flipped in the middle of the deflated data.
python3 -c "
b = bytearray(open('inc.tar.gz', 'rb').read()); b[len(b) // 2] ^= 1
open('flipped.tar.gz', 'wb').write(b)"
gzip -t flipped.tar.gz 2>/dev/null && fail "flipped.tar.gz tests good"
head -c -8 inc.tar.gz > notrailer.tar.gz
gzip -t notrailer.tar.gz 2>/dev/null && fail "notrailer.tar.gz tests good"

vs g0/vm.img restore/
cp restore/vm.img keep.img
for a in flipped.tar.gz notrailer.tar.gz; do
	must_fail 2 "^vmsync: $a: offset [0-9]+(: vm\.img:| of the gzip stream, after the last entry:) gzip: " \
		vs "$a" restore/
	cmp restore/vm.img keep.img || fail "$a: the base changed"
	vs --verify restore/vm.img > /dev/null 2>&1 ||
		fail "$a: the base's index is no longer trusted"
done
vs inc.tar.gz restore/
cmp restore/vm.img g1/vm.img || fail "inc.tar.gz: not the new generation"
echo "ok"
