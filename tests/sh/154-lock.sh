#!/usr/bin/env bash
# Proves: two runs never work on one target: while the target is locked by a
# run (flock), a second run exits 6 with a clear message and changes
# nothing; once the lock is gone, a run works; a dry run is refused too.
. "$VMSYNC_TOP/tests/functions.sh"
requires flock

src=$TMP/disk.img
tgt=$TMP/backup.img
"$HOLES" make "$src" 64M 0:1M:1
vs -q "$src" "$tgt"
"$HOLES" fill "$src" 0:4K:2
sum=$(md5sum < "$tgt")

# The lock holder is one process (exec), so killing it releases the lock.
( exec 9< "$tgt"; flock -x 9; exec sleep 30 ) &
holder=$!
cleanup_fn "kill $holder 2>/dev/null"
for i in $(seq 100); do
	flock -n -x "$tgt" true 2>/dev/null || break
	sleep 0.05
done
must_fail 6 "$tgt: target is in use by another vmsync run" vs "$src" "$tgt"
must_fail 6 "$tgt: target is in use by another vmsync run" vs -n "$src" "$tgt"
[ "$(md5sum < "$tgt")" = "$sum" ] || fail "locked target changed"
kill "$holder"
wait "$holder" 2>/dev/null || true

vs -q "$src" "$tgt"
cmp "$src" "$tgt" || fail "run after the lock was released"

# Two real runs at once on a new target: one waits for nobody -- exactly one
# of them may fail, and only with 6.
"$HOLES" make "$src" 2G 0:200M:3 1G:200M:4
rm -f "$tgt"
rc1=0 rc2=0
vs -q "$src" "$tgt" 2> "$TMP/e1" & p1=$!
vs -q "$src" "$tgt" 2> "$TMP/e2" & p2=$!
wait $p1 || rc1=$?
wait $p2 || rc2=$?
echo "exit codes $rc1 $rc2"
for rc in $rc1 $rc2; do
	[ "$rc" -eq 0 ] || [ "$rc" -eq 6 ] || fail "concurrent run exit $rc: $(cat "$TMP/e1" "$TMP/e2")"
done
[ "$rc1" -eq 0 ] || [ "$rc2" -eq 0 ] || fail "both concurrent runs failed"
vs -q "$src" "$tgt"
cmp "$src" "$tgt" || fail "target after concurrent runs"
