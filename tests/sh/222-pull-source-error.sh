#!/usr/bin/env bash
# Proves: a pull whose source fails on the server in the middle of the
# run (a qcow2 compressed cluster that does not inflate, found only when
# it is read) ends with the server's own one line, naming the source and
# the guest offset, and its exit code (2); not with the client's
# "malformed message" about the server's ERROR, which lost the file and
# the cause.  The backup the pull was updating is not trusted by the next
# pull, which ends equal to the source.
. "$VMSYNC_TOP/tests/functions.sh"
requires qemu-img jq base64

cd "$TMP" || fail "cd $TMP"
M=1048576
# Text compresses to about 3/4: clusters lie back to back in the file.
head -c $((3 * M)) /dev/urandom | base64 -w 0 | head -c $((4 * M)) > guest.raw
truncate -s 8M guest.raw
qemu-img convert -c -f raw -O qcow2 guest.raw good.qcow2
cp good.qcow2 src.qcow2
mkdir out
rvs -q -O raw "host:$TMP/src.qcow2" out/
same guest.raw out/src.raw

# 192 KiB of 0xff over the compressed data: a cluster that starts there
# has an invalid deflate block type.
head -c $((192 << 10)) /dev/zero | tr '\0' '\377' |
	dd of=src.qcow2 bs=64K seek=16 conv=notrunc status=none
qemu-img convert -f qcow2 -O raw src.qcow2 /dev/null 2> /dev/null &&
	fail "qemu reads the damaged image"
must_fail 2 "^vmsync: host: $TMP/src.qcow2: guest offset [0-9]+: invalid deflate compressed cluster$" \
	rvs -O raw "host:$TMP/src.qcow2" out/

cp good.qcow2 src.qcow2
STATS=$(rvs --json --no-progress -O raw "host:$TMP/src.qcow2" out/)
[ "$(stat_of index)" != trusted ] || fail "the failed pull left a trusted index"
same guest.raw out/src.raw
