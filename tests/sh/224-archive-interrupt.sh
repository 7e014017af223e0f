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
#  - the same into a plain .tar (written by the feeding thread itself);
#  - both again to a reader that never reads: the write under way cannot
#    end by itself (a .tar.zst's is in its writing thread, which takes
#    no interrupt unless woken; the old code waited for it forever).
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

# stuck_reader: hold stdin open and never read it.
stuck_reader() {
	exec sleep 30
}

# interrupted FORMAT READER: export rnd.img as FORMAT to READER, SIGINT
# after a second; vmsync must end within 5 s of it, exit 4, one line.
interrupted() {
	local pid rpid rc=0 t0
	rm -f pipe
	mkfifo pipe
	"$2" < pipe &
	rpid=$!
	"$VMSYNC" --no-progress --archive="$1" rnd.img - > pipe 2> "$TMP/err" &
	pid=$!
	cleanup_fn "kill -9 $pid 2>/dev/null"
	sleep 1
	kill -0 "$pid" 2> /dev/null || fail "$1 to $2: vmsync ended within a second"
	t0=$(date +%s%N)
	kill -INT "$pid"
	while kill -0 "$pid" 2> /dev/null; do
		[ $(($(date +%s%N) - t0)) -lt 5000000000 ] || {
			kill -9 "$pid"
			fail "$1 to $2: still running 5 s after SIGINT"
		}
		sleep 0.05
	done
	wait "$pid" || rc=$?
	[ "$rc" -eq 4 ] || fail "$1 to $2: exit $rc: $(cat "$TMP/err")"
	[ "$(cat "$TMP/err")" = "vmsync: interrupted" ] ||
		fail "$1 to $2: stderr: $(cat "$TMP/err")"
	echo "$1 to $2: ended $((($(date +%s%N) - t0) / 1000000)) ms after SIGINT"
	kill "$rpid" 2> /dev/null
	wait
}

interrupted tar.zst slow_reader
interrupted tar slow_reader
interrupted tar.zst stuck_reader
interrupted tar stuck_reader

echo "ok"
