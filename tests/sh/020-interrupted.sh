#!/usr/bin/env bash
# Proves: an interrupted run leaves a target that the next run repairs.
# SIGTERM in the middle of a first sync makes vmsync stop, report status 4
# (one-line error, JSON with exit_code 4) and exit 4; the next run does not
# trust the index ("rebuilt"), ends equal, and the run after it is trusted
# and does nothing.  kill -9 in the middle of an incremental run (no chance
# to clean up) is repaired the same way, and the repair does not rewrite
# what the killed run had already written.  A run the signal reaches only
# once it has written everything (or finished: then exit 0 and a whole
# target) is started again, up to three times; one must be stopped midway.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires jq

mnt=$(mkbtrfs 2G)
src=$TMP/disk.img
M=1048576
"$HOLES" make "$src" 512M 0:64M:1 150M:64M:2 300M:64M:3 488M:24M:4
srcdata=$((216 * M))
tgt=$mnt/disk.img
export VMSYNC_DEBUG_OPS=$TMP/ops


# --- SIGTERM during the first sync.
interrupted=0
for attempt in 1 2 3; do
	rm -f "$tgt" "$mnt/.disk.img.vmsync-index"
	start_vmsync "$src" "$tgt"
	kill -TERM "$pid" 2> /dev/null || true
	rc=0
	wait "$pid" || rc=$?
	cat "$TMP/err"
	if [ "$rc" -eq 0 ]; then
		# The run had finished when the signal came: it must be whole.
		[ ! -s "$TMP/err" ] || fail "SIGTERM too late: exit 0 with a message"
		same "$src" "$tgt"
		echo "attempt $attempt: the run had finished when the signal came"
		continue
	fi
	[ "$rc" -eq 4 ] || fail "SIGTERM: exit $rc, not 4"
	[ "$(wc -l < "$TMP/err")" -eq 1 ] || fail "SIGTERM: not a one-line error"
	grep -q '^vmsync: .*interrupted' "$TMP/err" || fail "SIGTERM: no 'interrupted' message"
	[ "$(jq .exit_code "$TMP/out")" -eq 4 ] || fail "SIGTERM: JSON exit_code"
	[ "$(jq '.images[0].status' "$TMP/out")" -eq 4 ] || fail "SIGTERM: JSON status"
	if ! cmp -s "$src" "$tgt"; then
		interrupted=1
		break
	fi
	echo "attempt $attempt: the run had written everything when the signal came"
done
[ "$interrupted" -eq 1 ] || fail "never interrupted a run in the middle"
[ "$(jq '.images[0].written_bytes' "$TMP/out")" -lt "$srcdata" ] ||
	fail "SIGTERM: the run wrote everything before stopping"

: > "$TMP/ops"
sync_stats "$src" "$tgt"
same "$src" "$tgt"
[ "$(stat_of index)" = rebuilt ] || fail "after SIGTERM: index $(stat_of index)"
[ "$(stat_of written_bytes)" -lt "$srcdata" ] ||
	fail "after SIGTERM: rewrote what the stopped run had written"
diff <(data_ranges "$src") <(data_ranges "$tgt") || fail "after SIGTERM: allocation"
: > "$TMP/ops"
sync_stats "$src" "$tgt"
[ "$(stat_of index)" = trusted ] || fail "after repair: index $(stat_of index)"
[ ! -s "$TMP/ops" ] || fail "after repair: did $(head -3 "$TMP/ops")"

# --- kill -9 during an incremental run: all data changes.
killed=0
for attempt in 1 2 3; do
	"$HOLES" fill "$src" 0:64M:$((10 + attempt)) 150M:64M:$((20 + attempt)) \
		300M:64M:$((30 + attempt)) 488M:24M:$((40 + attempt))
	start_vmsync "$src" "$tgt"
	kill -KILL "$pid" 2> /dev/null || true
	rc=0
	wait "$pid" || rc=$?
	[ "$rc" -eq 137 ] || [ "$rc" -eq 0 ] || fail "kill -9: exit $rc"
	if [ "$rc" -eq 0 ]; then
		same "$src" "$tgt"
		echo "attempt $attempt: the run had finished when the signal came"
	elif cmp -s "$src" "$tgt"; then
		echo "attempt $attempt: the run had written everything when the signal came"
	else
		killed=1
		break
	fi
done
[ "$killed" -eq 1 ] || fail "never killed a run in the middle"
[ -s "$TMP/ops" ] || fail "the killed run had written nothing"

: > "$TMP/ops"
sync_stats "$src" "$tgt"
same "$src" "$tgt"
[ "$(stat_of index)" = rebuilt ] || fail "after kill -9: index $(stat_of index)"
[ "$(stat_of written_bytes)" -lt "$srcdata" ] ||
	fail "after kill -9: rewrote what the killed run had written"
: > "$TMP/ops"
sync_stats "$src" "$tgt"
[ "$(stat_of index)" = trusted ] || fail "after repair: index $(stat_of index)"
[ ! -s "$TMP/ops" ] || fail "after repair: did $(head -3 "$TMP/ops")"
same "$src" "$tgt"
