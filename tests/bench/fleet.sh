#!/bin/bash
# fleet.sh CMDS TIMES: run every line of CMDS at once, one client each, and
# write "client seconds status" for each to TIMES, in client order.  Fails
# when a client did, after printing its output.
set -u
export LC_ALL=C	# $EPOCHREALTIME and awk with a decimal point
cmds=$1 times=$2
n=0
while IFS= read -r cmd; do
	n=$((n + 1))
	# Each client times itself: the slowest one is what a backup window
	# has to hold, the wall time of all is what the server sustains.
	(
		t0=$EPOCHREALTIME
		bash -c "$cmd" > "$times.$n.out" 2>&1
		rc=$?
		echo "$n $t0 $EPOCHREALTIME $rc" > "$times.$n"
	) &
done < "$cmds"
wait
fail=0
: > "$times"
for ((i = 1; i <= n; i++)); do
	read -r c t0 t1 rc < "$times.$i"
	echo "$c $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') $rc" >> "$times"
	if [ "$rc" -ne 0 ]; then
		echo "fleet: client $c failed ($rc): $cmds line $c" >&2
		cat "$times.$i.out" >&2
		fail=1
	fi
	rm -f "$times.$i" "$times.$i.out"
done
exit "$fail"
