#!/usr/bin/env bash
# Proves: an export interrupted while its reader is slow ends after the
# write under way, not after every frame in flight.  A .tar.zst's frames
# (4 MiB each) are written by a thread of their own in pieces of at most
# 1 MiB, which stops between pieces once interrupted, and that failure
# wakes the thread that feeds them:
#  - 64 MiB of random data exported to stdout, read at 512 KiB/s: SIGINT
#    after a second ends vmsync within 5 s (a piece takes 2 s; the rest
#    of a frame up to 8 s, and every frame in flight far longer), exit 4
#    with one "interrupted" line;
#  - the same into a plain .tar (written by the feeding thread itself).
. "$VMSYNC_TOP/tests/functions.sh"
requires python3

cd "$TMP" || fail "cd $TMP"
head -c $((64 << 20)) /dev/urandom > rnd.img

# slow_reader: read stdin at 512 KiB/s, 64 KiB at a time, to its end.
slow_reader() {
	python3 -c '
import sys, time
while sys.stdin.buffer.read(65536):
	time.sleep(1 / 8)
'
}

# interrupted FORMAT: export rnd.img as FORMAT to a slow reader, SIGINT
# after a second; vmsync must end within 5 s of it, exit 4, one line.
interrupted() {
	local pid rc=0 t0
	rm -f pipe
	mkfifo pipe
	slow_reader < pipe &
	"$VMSYNC" --no-progress --archive="$1" rnd.img - > pipe 2> "$TMP/err" &
	pid=$!
	cleanup_fn "kill -9 $pid 2>/dev/null"
	sleep 1
	kill -0 "$pid" 2> /dev/null || fail "$1: vmsync ended within a second"
	t0=$(date +%s%N)
	kill -INT "$pid"
	while kill -0 "$pid" 2> /dev/null; do
		[ $(($(date +%s%N) - t0)) -lt 5000000000 ] || {
			kill -9 "$pid"
			fail "$1: still running 5 s after SIGINT"
		}
		sleep 0.05
	done
	wait "$pid" || rc=$?
	[ "$rc" -eq 4 ] || fail "$1: exit $rc: $(cat "$TMP/err")"
	[ "$(cat "$TMP/err")" = "vmsync: interrupted" ] ||
		fail "$1: stderr: $(cat "$TMP/err")"
	echo "$1: ended $((($(date +%s%N) - t0) / 1000000)) ms after SIGINT"
	wait
}

interrupted tar.zst
interrupted tar

echo "ok"
