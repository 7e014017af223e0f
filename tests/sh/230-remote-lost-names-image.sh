#!/usr/bin/env bash
# Proves: a stream that breaks during a push or a pull is reported with
# the image the session carried, so that in a run of several images the
# operator can tell which one failed.  It used to name only the host
# ("vmsync: host: connection lost", once per image).
#  - A push of two images whose requests are cut among the writes: exit
#    3, one line per image, each naming its own target; the next run
#    completes.
#  - A pull through a cut stream: exit 2, one line naming the source.
. "$VMSYNC_TOP/tests/functions.sh"
requires perl

FAULT=$VMSYNC_TOP/tests/helpers/faultsh
cd "$TMP" || fail "cd $TMP"
"$HOLES" make a.img 32M 0:4M:1 20M:8M:2
"$HOLES" make b.img 32M 0:4M:3 20M:8M:4
mkdir bk pull
rvs -q a.img b.img "host:$TMP/bk/" || fail "first push: exit $?"
for x in a b; do
	head -c 4M /dev/urandom | dd of=$x.img bs=1M seek=8 conv=notrunc status=none
done

rc=0
"$VMSYNC" -e "$FAULT cut-out 70000" --remote-vmsync "$VMSYNC" a.img b.img \
	"host:$TMP/bk/" 2> err || rc=$?
cat err
[ "$rc" -eq 3 ] || fail "cut push: exit $rc, want 3"
[ "$(wc -l < err)" -eq 2 ] || fail "cut push: not one line per image"
sed -n 1p err | grep -Eq "^vmsync: host: $TMP/bk/a\.img: connection (lost|closed)$" ||
	fail "the first line does not name a.img"
sed -n 2p err | grep -Eq "^vmsync: host: $TMP/bk/b\.img: connection (lost|closed)$" ||
	fail "the second line does not name b.img"
rvs -q a.img b.img "host:$TMP/bk/" || fail "rerun: exit $?"
same a.img bk/a.img
same b.img bk/b.img

must_fail 2 "^vmsync: host: $TMP/a\.img: connection (lost|closed)$" \
	"$VMSYNC" -e "$FAULT cut-in 5000" --remote-vmsync "$VMSYNC" \
	"host:$TMP/a.img" pull/
echo "ok"
