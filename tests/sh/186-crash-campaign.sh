#!/usr/bin/env bash
# Proves: a vmsync killed at any instant (kill -9) never damages the
# previous backup and is always recovered by the next run.  Until fifty
# kills have landed (a run still going), after the guest changed, a run is
# started and killed after a random delay: a local sync, a push (its client or its server killed), a pull
# restore and a local restore, in turn.  After each kill the snapshot of
# the first backup is bit-identical, the rerun completes (exit 0), the
# target equals its source, and vmsync --verify passes on it.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs

mnt=$(mkbtrfs 2G)
btrfs subvolume create "$mnt/backup" > /dev/null
mkdir "$mnt/restore" "$mnt/pushed"
src=$TMP/vm.img
"$HOLES" make "$src" 48M 0:12M:1 20M:8M:2 44M:2M:3
vs -q --snapshot "$src" "$mnt/backup/"
snap=$(ls -d "$mnt/backup/.vmsync-snapshots"/*)
before=$(md5sum < "$snap/vm.img")$(md5sum < "$snap/.vm.img.vmsync-index")

rerun() {	# CMD...: until it is not refused for a lock the killed run
	local rc	# left to a server still exiting
	for _ in $(seq 50); do
		rc=0
		"$@" 2> "$TMP/err" || rc=$?
		[ $rc -ne 6 ] && break
		sleep 0.1
	done
	[ $rc -eq 0 ] || fail "rerun after kill $i ($mode): exit $rc: $(cat "$TMP/err")"
}
declare -A took		# ms a run of each mode took, its last rerun
kills=0 i=0
while [ "$kills" -lt 50 ] && [ "$i" -lt 150 ]; do
	i=$((i + 1))
	"$HOLES" fill "$src" $((RANDOM % 44))M:$((RANDOM % 2048 + 4))K:$((i % 250 + 1))
	[ $((i % 7)) -eq 0 ] && fallocate -p -o $(((RANDOM % 44) << 20)) -l 1M "$src"
	case $((i % 5)) in
	0) mode=local; cmd=(vs -q "$src" "$mnt/backup/"); tgt=$mnt/backup/vm.img; from=$src ;;
	1) mode=push-client; cmd=(rvs -q "$src" "host:$mnt/pushed/"); tgt=$mnt/pushed/vm.img; from=$src ;;
	2) mode=push-server; cmd=(rvs -q "$src" "host:$mnt/pushed/"); tgt=$mnt/pushed/vm.img; from=$src ;;
	3) mode=pull-restore; cmd=(rvs -q "host:$mnt/backup/vm.img" "$mnt/restore/"); tgt=$mnt/restore/vm.img; from=$mnt/backup/vm.img ;;
	4) mode=local-restore; cmd=(vs -q "$mnt/backup/vm.img" "$mnt/restore/"); tgt=$mnt/restore/vm.img; from=$mnt/backup/vm.img ;;
	esac
	"${cmd[@]}" 2> /dev/null &
	pid=$!
	# A random instant of the run: up to as long as its mode took last.
	delay=$((RANDOM % (${took[$mode]:-150} + 1)))
	sleep "$((delay / 1000)).$(printf '%03d' $((delay % 1000)))"
	if [ "$mode" = push-server ]; then
		# The oldest: a sanitizer's leak check forks a tracer that
		# looks the same, and killing it would hang the server.
		victim=$(pgrep -o -f -- "^$VMSYNC --server" || :)
	else
		victim=$(pgrep -P "$pid" -f "$VMSYNC" | head -1 || :)
		[ -n "$victim" ] || victim=$pid
	fi
	# Counted only where it landed: the run was still going.
	if [ -n "$victim" ] && kill -9 "$victim" 2> /dev/null; then
		kills=$((kills + 1))
	fi
	wait "$pid" 2> /dev/null || :
	[ "$(md5sum < "$snap/vm.img")$(md5sum < "$snap/.vm.img.vmsync-index")" = "$before" ] ||
		fail "kill $i ($mode): the snapshot changed"
	t0=${EPOCHREALTIME/./}
	rerun "${cmd[@]}"
	took[$mode]=$(( (${EPOCHREALTIME/./} - t0) / 1000 ))
	cmp "$from" "$tgt" || fail "kill $i ($mode): the rerun's target differs"
	"$VMSYNC" -q --verify "$tgt" || fail "kill $i ($mode): --verify after the rerun: exit $?"
done
[ "$kills" -ge 50 ] || fail "only $kills of $i runs were killed"
echo "$kills of $i runs killed with SIGKILL; every rerun recovered, the snapshot untouched"
