#!/usr/bin/env bash
# Proves: --index never overwrites a file that is not a vmsync index (a
# mistyped path naming another image is refused, exit 1, unchanged), and a
# run refused after opening its target leaves no empty files behind (a new
# target with a planted index symlink; a too-small device with a new index);
# two sources with one basename are refused before anything is synced.
. "$VMSYNC_TOP/tests/functions.sh"
requires_root
requires losetup
[ -w /dev/loop-control ] || skip "needs /dev/loop-control"

"$HOLES" make "$TMP/src.img" 64M 0:1M:1
"$HOLES" make "$TMP/other-vm.img" 8M 0:8M:2
sum=$(md5sum < "$TMP/other-vm.img")
must_fail 1 "$TMP/other-vm.img: not a vmsync index; refusing to overwrite it" \
	vs --index "$TMP/other-vm.img" "$TMP/src.img" "$TMP/t.img"
[ "$(md5sum < "$TMP/other-vm.img")" = "$sum" ] || fail "unrelated file overwritten"
[ ! -e "$TMP/t.img" ] || fail "refused run left the new target"

# A real index named with --index is used, an empty file becomes one.
: > "$TMP/empty.idx"
vs -q --index "$TMP/empty.idx" "$TMP/src.img" "$TMP/t.img"
head -c 8 "$TMP/empty.idx" | grep -q VMSYNCIX || fail "index not written"
sync_stats --index "$TMP/empty.idx" "$TMP/src.img" "$TMP/t.img"
[ "$(stat_of index)" = trusted ] || fail "named index not trusted"

mkdir "$TMP/d"
ln -s "$TMP/other-vm.img" "$TMP/d/.src.img.vmsync-index"
must_fail 3 "index is a symbolic link" vs "$TMP/src.img" "$TMP/d/"
[ ! -e "$TMP/d/src.img" ] || fail "refused run left an empty target"

truncate -s 32M "$TMP/small.img"
dev=$(mkloopdev "$TMP/small.img")
must_fail 3 "smaller than the source" vs --index "$TMP/new.idx" "$TMP/src.img" "$dev"
[ ! -e "$TMP/new.idx" ] || fail "refused run left an empty index"

# Two sources with one basename would land on one target: refused, nothing
# synced.
mkdir "$TMP/a" "$TMP/b" "$TMP/out"
"$HOLES" make "$TMP/a/x.img" 1M 0:4K:3
"$HOLES" make "$TMP/b/x.img" 1M 0:4K:4
must_fail 1 "$TMP/a/x.img and $TMP/b/x.img would both be synced to the same target x.img" \
	vs "$TMP/a/x.img" "$TMP/b/x.img" "$TMP/out/"
[ -z "$(ls -A "$TMP/out")" ] || fail "synced despite the clash"
