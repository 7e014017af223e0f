#!/usr/bin/env bash
# Proves: a write by another program during a run is never blessed by the
# run's commit.  (1) a push is stopped (SIGSTOP of its client) after the
# server's first write and another program writes into the target before
# it goes on; (2) a local run pauses
# just before commit (VMSYNC_DEBUG_PAUSE) and another program writes then.
# Either way the run exits 0 (the local one with one warning line naming
# the target), the index stays dirty, and the next run does not trust it ("rebuilt"),
# repairs the foreign bytes and ends equal to the source; the run after
# that is trusted and does nothing.
. "$VMSYNC_TOP/tests/functions.sh"
requires jq

src=$TMP/disk.img
M=1048576
"$HOLES" make "$src" 256M 0:32M:1 64M:32M:2 128M:32M:3 200M:32M:4
mkdir "$TMP/backup"
tgt=$TMP/backup/disk.img
export VMSYNC_DEBUG_OPS=$TMP/ops
"$HOLES" make "$TMP/junk" 4K 0:4K:99

foreign() {	# another program writes into a hole of the source
	sleep 0.05
	dd if="$TMP/junk" of="$tgt" bs=4K seek=$((250 * 256)) conv=notrunc \
		status=none
}

repaired() {	# ARGS: case, "warns" if the run prints the warning
	if [ "${2:-}" = warns ]; then
		grep -q "^vmsync: warning: $tgt: written by another program during this run" \
			"$TMP/err" || fail "$1: no warning: $(cat "$TMP/err")"
		[ "$(wc -l < "$TMP/err")" -eq 1 ] || fail "$1: not one line: $(cat "$TMP/err")"
	fi
	sync_stats "$src" "$TMP/backup/"
	[ "$(stat_of index)" = rebuilt ] || fail "$1: next run: index $(stat_of index)"
	same "$src" "$tgt"
	: > "$TMP/ops"
	sync_stats "$src" "$TMP/backup/"
	[ "$(stat_of index)" = trusted ] || fail "$1: after repair: $(stat_of index)"
	[ ! -s "$TMP/ops" ] || fail "$1: after repair: did $(head -3 "$TMP/ops")"
}

# --- (1) between two of its writes: a push slowed down by --bwlimit,
# its client stopped once the server wrote, so that the server has done
# its writes (and noted their change time) before the foreign one lands,
# a clock tick later.
rm -f "$tgt" "$TMP/backup/.disk.img.vmsync-index"
: > "$TMP/ops"
rvs --no-progress --bwlimit=32M "$src" "host:$TMP/backup/" 2> "$TMP/err" & pid=$!
for _ in $(seq 1000); do
	[ -s "$TMP/ops" ] && break
	sleep 0.01
done
client=$(pgrep -n -f -- "--bwlimit=32M $src") || fail "no client process"
kill -STOP "$client"
cleanup_fn "kill -CONT $client 2>/dev/null"
sleep 0.3
kill -0 "$pid" 2> /dev/null || fail "the push ended before the foreign write"
foreign
sleep 0.05
kill -CONT "$client"
rc=0
wait "$pid" || rc=$?
[ "$rc" -eq 0 ] || fail "push: exit $rc: $(cat "$TMP/err")"
# A server prints no warnings: the index it leaves tells.
repaired "between writes"

# --- (2) after its last write, before commit.
"$HOLES" fill "$src" 0:1M:7 130M:1M:8
rm -f "$TMP/pause"
VMSYNC_DEBUG_PAUSE=$TMP/pause "$VMSYNC" --no-progress "$src" "$TMP/backup/" \
	2> "$TMP/err" & pid=$!
for _ in $(seq 1000); do
	[ -e "$TMP/pause" ] && break
	kill -0 "$pid" 2> /dev/null || break
	sleep 0.01
done
[ -e "$TMP/pause" ] || fail "the run did not pause before commit"
foreign
rm "$TMP/pause"
rc=0
wait "$pid" || rc=$?
[ "$rc" -eq 0 ] || fail "paused run: exit $rc: $(cat "$TMP/err")"
repaired "before commit" warns
