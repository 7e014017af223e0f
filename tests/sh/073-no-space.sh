#!/usr/bin/env bash
# Proves: a source whose data cannot fit the target's filesystem is
# refused before anything is written.  On a 16 MiB tmpfs: a new target
# for 24 MiB of data exits 3 with one line "not enough space: need N,
# have M" and leaves no file; an existing 8 MiB backup whose source grew
# to 20 MiB of data is refused the same way and stays as it was, its
# index trusted by the next run of the old source.  A sync that rewrites
# the data in place on an almost full filesystem is not refused, and
# --force skips the check.  A push to a server is checked there too, and
# its --force reaches the server.
. "$VMSYNC_TOP/tests/functions.sh"
requires_root
requires jq mount

small=$TMP/small
mkdir "$small"
mount -t tmpfs -o size=16M tmpfs "$small" || skip "cannot mount tmpfs"
cleanup_fn "umount -l '$small'"
src=$TMP/disk.img
export VMSYNC_DEBUG_OPS=$TMP/ops

"$HOLES" make "$src" 64M 0:12M:1 32M:12M:2
: > "$TMP/ops"
must_fail 3 "^vmsync: $small/disk.img: not enough space: need [0-9]+, have [0-9]+ bytes" \
	vs "$src" "$small/"
[ -z "$(ls -A "$small")" ] || fail "refused run left: $(ls -A "$small")"
[ ! -s "$TMP/ops" ] || fail "refused run wrote: $(cat "$TMP/ops")"

"$HOLES" make "$src" 64M 0:4M:1 32M:4M:2
vs -q "$src" "$small/"
same "$src" "$small/disk.img"
cp "$src" "$TMP/old.img"
cp --sparse=always "$small/disk.img" "$TMP/backup.copy"
isum=$(md5sum < "$small/.disk.img.vmsync-index")
"$HOLES" fill "$src" 8M:12M:3
: > "$TMP/ops"
must_fail 3 "^vmsync: $small/disk.img: not enough space: need" vs "$src" "$small/"
[ ! -s "$TMP/ops" ] || fail "refused update wrote: $(cat "$TMP/ops")"
cmp "$TMP/backup.copy" "$small/disk.img" || fail "refused update changed the target"
[ "$(md5sum < "$small/.disk.img.vmsync-index")" = "$isum" ] ||
	fail "refused update changed the index"
sync_stats "$TMP/old.img" "$small/disk.img"
[ "$(stat_of index)" = trusted ] || fail "after the refusal: index $(stat_of index)"

# Nearly full: rewriting the 8 MiB in place needs no new space.
fallocate -l 7M "$small/filler" || dd if=/dev/zero of="$small/filler" bs=1M count=7 status=none
"$HOLES" make "$src" 64M 0:4M:5 32M:4M:6
vs -q "$src" "$small/" || fail "an in-place rewrite was refused"
same "$src" "$small/disk.img"

# --force: goes on, and the filesystem itself then says no.
"$HOLES" fill "$src" 8M:12M:7
rc=0
vs -q --force "$src" "$small/" 2> "$TMP/err" || rc=$?
[ "$rc" -eq 3 ] || fail "--force: exit $rc"
if grep -q "not enough space: need" "$TMP/err"; then
	fail "--force still checked"
fi

# Through the protocol: the server checks a push the same way, and the
# client's --force reaches it.
rm -f "$small/filler" "$small/disk.img" "$small/.disk.img.vmsync-index"
"$HOLES" make "$src" 64M 0:12M:1 32M:12M:2
: > "$TMP/ops"
must_fail 3 "^vmsync: host: .*disk.img: not enough space: need [0-9]+, have [0-9]+ bytes" \
	rvs "$src" "host:$small/"
[ ! -s "$TMP/ops" ] || fail "refused push wrote: $(cat "$TMP/ops")"
[ ! -e "$small/disk.img" ] || [ ! -s "$small/disk.img" ] ||
	fail "refused push left data"
rc=0
rvs -q --force "$src" "host:$small/" 2> "$TMP/err" || rc=$?
[ "$rc" -eq 3 ] || fail "push --force: exit $rc"
! grep -q "not enough space: need" "$TMP/err" || fail "push --force still checked"
