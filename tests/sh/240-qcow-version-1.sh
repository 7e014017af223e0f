#!/usr/bin/env bash
# Proves: a qcow image of version 1 (qemu-img create -f qcow, named .qcow,
# which says qcow2) is refused with exit 2 and one line naming the image
# and its version, in both views, and nothing is written.  Its header has
# no cluster size where version 2 and 3 have one: the refusal said
# "unsupported cluster size: 2^0".
. "$VMSYNC_TOP/tests/functions.sh"
requires qemu-img qemu-io

cd "$TMP" || fail "cd $TMP"
qemu-img create -q -f qcow old.qcow 16M
qemu-io -f qcow -c 'write -P 1 0 64k' old.qcow > /dev/null
mkdir out
must_fail 2 "old\.qcow: .*version 1" vs -q old.qcow out/
must_fail 2 "old\.qcow: .*version 1" vs -q -O raw old.qcow out/
must_fail 2 "old\.qcow: .*version 1" vs -q --format=qcow2 old.qcow out/
[ -z "$(ls -A out)" ] || fail "something was written: $(ls -A out)"
echo "ok"
