#!/usr/bin/env bash
# Proves: --snapshot takes one snapshot per run and subvolume, --keep
# counts runs, and no snapshot holds a half-written image.
#  - A local run of two images takes one snapshot holding both; so does
#    a push run of two images.
#  - --keep 2 over several runs of {a, b} keeps the 2 newest runs; a run
#    of a alone with --keep 1 deletes none of them (they hold b too).
#  - A writer paused just before its commit (VMSYNC_DEBUG_PAUSE) holds
#    off another run's snapshot until it commits: the snapshot waits, a
#    writer that starts meanwhile queues behind the snapshot (so writers
#    cannot starve it), and the snapshot's copy of the paused image is
#    complete with a clean index.
#  - An image whose index is left dirty (another program wrote it during
#    the run) means no snapshot of its subvolume: exit 3, one line.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs

mnt=$(mkbtrfs 1G)
btrfs subvolume create "$mnt/vol" > /dev/null
btrfs subvolume create "$mnt/vol2" > /dev/null
snaps=$mnt/vol/.vmsync-snapshots
for x in a b d e; do
	"$HOLES" make "$TMP/$x.img" 16M 0:1M:1 4M:1M:$((RANDOM % 200 + 2))
done
nsnaps() { ls -A "$1" 2> /dev/null | wc -l; }
dirty() {	# the index's flags (u32 at byte 20), bit 0
	[ $(( $(od -An -tu4 -j20 -N4 "$1") & 1 )) -eq 1 ]
}

# One snapshot for a run of two images.
vs -q --snapshot "$TMP/a.img" "$TMP/b.img" "$mnt/vol/" ||
	fail "run of a and b: exit $?"
[ "$(nsnaps "$snaps")" -eq 1 ] || fail "a run of two images took $(nsnaps "$snaps") snapshots"
s=$(ls "$snaps")
same "$TMP/a.img" "$snaps/$s/a.img"
same "$TMP/b.img" "$snaps/$s/b.img"
"$HOLES" fill "$TMP/a.img" 8M:64K:7
vs -q --snapshot "$TMP/a.img" "$mnt/vol/" || fail "a alone: exit $?"
[ "$(nsnaps "$snaps")" -eq 2 ] || fail "a's run: $(nsnaps "$snaps") snapshots, not 2"

# Pushes: a run of two images, one snapshot.
rvs -q --snapshot "$TMP/d.img" "$TMP/e.img" "host:$mnt/vol2/" ||
	fail "push of d and e: exit $?"
[ "$(nsnaps "$mnt/vol2/.vmsync-snapshots")" -eq 1 ] ||
	fail "the push run took $(nsnaps "$mnt/vol2/.vmsync-snapshots") snapshots, not 1"
s=$(ls "$mnt/vol2/.vmsync-snapshots" | tail -1)
same "$TMP/d.img" "$mnt/vol2/.vmsync-snapshots/$s/d.img"
same "$TMP/e.img" "$mnt/vol2/.vmsync-snapshots/$s/e.img"

# --keep counts runs of {a, b}; a's own run never deletes them.
for s in "$snaps"/*; do
	btrfs property set "$s" ro false
	btrfs subvolume delete "$s" > /dev/null
done
for i in 1 2 3; do
	"$HOLES" fill "$TMP/b.img" "$i"M:64K:$((i + 30))
	vs -q --snapshot --keep 2 "$TMP/a.img" "$TMP/b.img" "$mnt/vol/" ||
		fail "keep run $i: exit $?"
done
[ "$(nsnaps "$snaps")" -eq 2 ] || fail "--keep 2 after 3 runs: $(nsnaps "$snaps")"
last=$(ls "$snaps" | tail -1)
same "$TMP/b.img" "$snaps/$last/b.img"
vs -q --snapshot --keep 1 "$TMP/a.img" "$mnt/vol/" || fail "a --keep 1: exit $?"
[ "$(nsnaps "$snaps")" -eq 3 ] || fail "a's --keep 1 deleted runs that hold b: $(nsnaps "$snaps") left"

# A paused writer holds off a snapshot; a new writer queues behind it.
"$HOLES" make "$TMP/slow.img" 64M 0:32M:5
"$HOLES" make "$TMP/late.img" 8M 0:1M:6
VMSYNC_DEBUG_PAUSE=$TMP/pause "$VMSYNC" -q "$TMP/slow.img" "$mnt/vol/" &
wpid=$!
for _ in $(seq 500); do [ -e "$TMP/pause" ] && break; sleep 0.02; done
[ -e "$TMP/pause" ] || fail "the writer did not reach its commit"
before=$(nsnaps "$snaps")
vs -q --snapshot "$TMP/b.img" "$mnt/vol/" & spid=$!
gate=$(stat -c %i "$mnt/vol/.vmsync.lock")
for _ in $(seq 1000); do	# the snapshot holds the gate: it waits
	grep -Eq "^[0-9]+: FLOCK +ADVISORY +WRITE +[0-9]+ [0-9a-f]+:[0-9a-f]+:$gate " /proc/locks && break
	kill -0 $spid 2> /dev/null || break
	sleep 0.01
done
sleep 0.5
kill -0 $spid 2> /dev/null || fail "the snapshot did not wait for the writer"
[ "$(nsnaps "$snaps")" -eq "$before" ] || fail "a snapshot was taken during the write"
vs -q "$TMP/late.img" "$mnt/vol/" & lpid=$!
sleep 1
kill -0 $lpid 2> /dev/null || fail "a new writer went past the waiting snapshot"
rm "$TMP/pause"
wait $wpid || fail "the paused writer: exit $?"
wait $spid || fail "the waiting snapshot: exit $?"
wait $lpid || fail "the queued writer: exit $?"
[ "$(nsnaps "$snaps")" -eq $((before + 1)) ] || fail "no snapshot after the writer"
s=$(ls "$snaps" | tail -1)
same "$TMP/slow.img" "$snaps/$s/slow.img"
! dirty "$snaps/$s/.slow.img.vmsync-index" || fail "the snapshot holds slow.img's index dirty"
[ ! -e "$snaps/$s/late.img" ] || fail "the queued writer's image is in the snapshot"
same "$TMP/late.img" "$mnt/vol/late.img"

# A dirty index (a foreign write during the run): no snapshot.
before=$(nsnaps "$snaps")
"$HOLES" fill "$TMP/a.img" 9M:64K:40
VMSYNC_DEBUG_PAUSE=$TMP/pause "$VMSYNC" -q --snapshot "$TMP/a.img" \
	"$mnt/vol/" 2> "$TMP/err" & wpid=$!
for _ in $(seq 500); do [ -e "$TMP/pause" ] && break; sleep 0.02; done
sleep 0.05
dd if=/dev/urandom of="$mnt/vol/a.img" bs=4K seek=3000 count=1 conv=notrunc status=none
rm "$TMP/pause"
rc=0
wait $wpid || rc=$?
[ $rc -eq 3 ] || fail "snapshot of a dirty image: exit $rc: $(cat "$TMP/err")"
grep -q "a.img: index dirty .*no snapshot" "$TMP/err" || fail "no reason given: $(cat "$TMP/err")"
[ "$(nsnaps "$snaps")" -eq "$before" ] || fail "a snapshot holds a dirty image"
echo "one snapshot per run, --keep counts runs, writers and snapshots take turns"
