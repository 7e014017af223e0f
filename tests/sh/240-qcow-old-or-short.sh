#!/usr/bin/env bash
# Proves: a qcow image of version 1 (qemu-img create -f qcow, named .qcow,
# which says qcow2) is refused with exit 2 and one line naming the image
# and its version, in both views, and nothing is written.  Its header has
# no cluster size where version 2 and 3 have one: the refusal said
# "unsupported cluster size: 2^0".  So did a qcow2 cut inside its header
# (short reads come back as zeros); now it is "truncated", with its size.
. "$VMSYNC_TOP/tests/functions.sh"
requires qemu-img qemu-io

cd "$TMP" || fail "cd $TMP"
qemu-img create -q -f qcow old.qcow 16M
qemu-io -f qcow -c 'write -P 1 0 64k' old.qcow > /dev/null
mkdir out
must_fail 2 "old\.qcow: .*version 1" vs -q old.qcow out/
must_fail 2 "old\.qcow: .*version 1" vs -q -O raw old.qcow out/
must_fail 2 "old\.qcow: .*version 1" vs -q --format=qcow2 old.qcow out/
qemu-img create -q -f qcow2 -o compat=1.1 new.qcow2 16M
# A version 3 header is 104 bytes: cut past 72 it is still truncated.
for n in 8 40 71 72 80 103; do
	head -c "$n" new.qcow2 > short.qcow2
	must_fail 2 "short\.qcow2: truncated: $n bytes" vs -q short.qcow2 out/
	must_fail 2 "short\.qcow2: truncated: $n bytes" vs -q -O raw short.qcow2 out/
done
[ -z "$(ls -A out)" ] || fail "something was written: $(ls -A out)"
echo "ok"
