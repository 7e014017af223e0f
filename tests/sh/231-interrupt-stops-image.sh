#!/usr/bin/env bash
# Proves: SIGINT or SIGTERM stops the image being synced at once, locally
# and pushed.  The engine went on with the groups its reader threads had
# read ahead (up to 24 MiB), paced by --bwlimit: at 1 MiB/s a local sync
# went on for about 40 s after the signal; and a push then still sent
# what it had queued at the --bwlimit pace.
#  - A sync of a changed 40 MiB image at 1 MiB/s, signalled after 1 s,
#    ends within 3 s: exit 4, one line naming the image, its index left
#    dirty; the next run completes.
. "$VMSYNC_TOP/tests/functions.sh"

cd "$TMP" || fail "cd $TMP"
"$HOLES" make src.img 48M 0:40M:1
mkdir local pushed
vs -q src.img local/ || fail "first sync: exit $?"
rvs -q src.img host:"$TMP/pushed/" || fail "first push: exit $?"
dirty() {	# is the dirty flag (bit 0 of the u32 LE at 20) of index $1 set?
	[ $(( $(od -An -tu4 -j20 -N4 --endian=little "$1") & 1 )) -eq 1 ]
}

for run in local:INT local:TERM pushed:INT pushed:TERM; do
	where=${run%:*} sig=${run#*:}
	head -c 40M /dev/urandom | dd of=src.img conv=notrunc status=none
	if [ "$where" = local ]; then
		"$VMSYNC" -q --bwlimit=1M src.img local/ 2> err &
	else
		"$VMSYNC" -e "$LOCALSH" --remote-vmsync "$VMSYNC" -q --bwlimit=1M \
			src.img "host:$TMP/pushed/" 2> err &
	fi
	pid=$!
	sleep 1
	start=$(date +%s)
	kill -"$sig" "$pid"
	rc=0
	wait "$pid" || rc=$?
	secs=$(( $(date +%s) - start ))
	cat err
	[ "$rc" -eq 4 ] || fail "$run: exit $rc, want 4"
	[ "$secs" -le 3 ] || fail "$run: it went on for $secs s after the signal"
	[ "$(wc -l < err)" -eq 1 ] && grep -q "src.img: interrupted$" err ||
		fail "$run: not one line naming the image"
	dirty "$where/.src.img.vmsync-index" || fail "$run: the index is clean"
	echo "$run: stopped in $secs s"
	if [ "$where" = local ]; then
		vs -q src.img local/ || fail "$run: rerun: exit $?"
	else
		rvs -q src.img host:"$TMP/pushed/" || fail "$run: rerun: exit $?"
	fi
	same src.img "$where/src.img"
done
echo "ok"
