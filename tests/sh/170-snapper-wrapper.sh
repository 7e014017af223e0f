#!/usr/bin/env bash
# Proves: contrib/snapper/vmsync-snapper wraps a sync into a snapper-managed
# backup subvolume in a pre and a post snapshot, both with the number
# cleanup algorithm.  A good sync: exit 0, the backup equals the source,
# the post's userdata is vmsync=ok,exit=0 and its snapshot holds the image
# (vmsync restores from it), the pre's does not.  A missing source: the
# wrapper exits 2 with vmsync's one-line error and the post says
# vmsync=failed,exit=2.  SIGTERM to the wrapper reaches vmsync and still
# ends in a post snapshot (exit=4).  An unknown config: exit 3 and vmsync
# is not run; a usage error: exit 1 and no snapshot.  `snapper cleanup
# number` keeps the NUMBER_LIMIT newest snapshots, whole pairs.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires snapper jq
. "$VMSYNC_TOP/tests/helpers/snapper.sh"

wrap=$VMSYNC_TOP/contrib/snapper/vmsync-snapper
export VMSYNC
mnt=$(mkbtrfs 1G)
btrfs subvolume create "$mnt/backup" > /dev/null
mkdir "$mnt/backup/images"
SNCFG=$(mksnapper "vmsync-t170-$$" "$mnt/backup")
sn set-config NUMBER_LIMIT=4
src=$TMP/web.img
"$HOLES" make "$src" 64M 0:4M:1 40M:2M:2
tgt=$mnt/backup/images/web.img

# A good run.
"$wrap" --no-dbus -c "$SNCFG" -d nightly -- -q "$src" "$mnt/backup/images/"
same "$src" "$tgt"
[ "$(snaps)" = "1 pre - number -
2 post 1 number exit=0,vmsync=ok" ] || fail "after a good run: $(snaps)"
[ "$(snap_field 2 description)" = nightly ] || fail "description: $(snap_field 2 description)"
[ ! -e "$mnt/backup/.snapshots/1/snapshot/images/web.img" ] || fail "the pre snapshot has the image"
same "$src" "$mnt/backup/.snapshots/2/snapshot/images/web.img"
mkdir "$TMP/restore"
vs -q "$mnt/backup/.snapshots/2/snapshot/images/web.img" "$TMP/restore/"
same "$src" "$TMP/restore/web.img"

# A missing source: vmsync's exit status and error, recorded in the post.
must_fail 2 "^vmsync: $TMP/missing.img: " \
	"$wrap" --no-dbus -c "$SNCFG" -- -q "$TMP/missing.img" "$mnt/backup/images/"
[ "$(snaps | tail -n 2)" = "3 pre - number -
4 post 3 number exit=2,vmsync=failed" ] || fail "after a failed run: $(snaps)"
same "$src" "$tgt"

# SIGTERM to the wrapper alone: passed on to vmsync (here a stand-in that
# waits to be stopped and exits 4 as vmsync does), then the post snapshot.
stub=$TMP/stub-vmsync
export STUB_LOG=$TMP/stub.log
cat > "$stub" <<'EOF'
#!/bin/sh
sleep 60 &
pid=$!
trap 'kill $pid; echo TERM >> "$STUB_LOG"; exit 4' TERM
echo "started $*" >> "$STUB_LOG"
wait $pid
EOF
chmod +x "$stub"
VMSYNC=$stub "$wrap" --no-dbus -c "$SNCFG" -- "$src" "$mnt/backup/images/" &
wpid=$!
cleanup_fn "kill $wpid 2>/dev/null"
for _ in $(seq 500); do
	grep -q '^started' "$STUB_LOG" 2>/dev/null && break
	sleep 0.02
done
grep -q "^started $src $mnt/backup/images/\$" "$STUB_LOG" || fail "the wrapper did not run vmsync"
kill -TERM "$wpid"
rc=0
wait "$wpid" || rc=$?
[ "$rc" -eq 4 ] || fail "interrupted wrapper: exit $rc, want 4"
grep -q '^TERM$' "$STUB_LOG" || fail "SIGTERM did not reach vmsync"
# NUMBER_LIMIT=4 of 6: the first pair is gone.
[ "$(snaps)" = "3 pre - number -
4 post 3 number exit=2,vmsync=failed
5 pre - number -
6 post 5 number exit=4,vmsync=failed" ] || fail "after an interrupted run: $(snaps)"

# Without its pre snapshot the sync does not run.
: > "$STUB_LOG"
rc=0
VMSYNC=$stub "$wrap" --no-dbus -c "vmsync-t170-none-$$" -- "$src" "$mnt/backup/images/" \
	2> "$TMP/err" || rc=$?
[ "$rc" -eq 3 ] || fail "unknown config: exit $rc, want 3"
grep -q "^vmsync-snapper: vmsync-t170-none-$$: pre snapshot failed\$" "$TMP/err" ||
	fail "unknown config: $(cat "$TMP/err")"
[ ! -s "$STUB_LOG" ] || fail "vmsync ran without a pre snapshot"

# Usage errors take no snapshot.
must_fail 1 '^usage: vmsync-snapper ' "$wrap" --no-dbus -- "$src" "$mnt/backup/images/"
must_fail 1 '^usage: vmsync-snapper ' "$wrap" --no-dbus -c "$SNCFG"
[ "$(snaps | wc -l)" -eq 4 ] || fail "a usage error changed the snapshots: $(snaps)"

# A good run again, --no-dbus from the environment; the oldest pair goes.
"$HOLES" fill "$src" 1M:64K:3
VMSYNC_SNAPPER_NO_DBUS=1 "$wrap" -c "$SNCFG" "$src" "$mnt/backup/images/"
same "$src" "$tgt"
same "$src" "$mnt/backup/.snapshots/8/snapshot/images/web.img"
[ "$(snaps)" = "5 pre - number -
6 post 5 number exit=4,vmsync=failed
7 pre - number -
8 post 7 number exit=0,vmsync=ok" ] || fail "after the last run: $(snaps)"
