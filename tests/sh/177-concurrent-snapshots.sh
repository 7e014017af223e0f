#!/usr/bin/env bash
# Proves: concurrent runs that each take a --snapshot of one subvolume all
# succeed, with no name taken twice and no debris: eight images synced at
# once (local runs and pushes through --server) into one subvolume each
# end with exit 0 and their own snapshot, named with the UTC time and
# ".N" where another run took that name in the same second; no .tmp-*
# snapshot is left; every target equals its source.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires jq

mnt=$(mkbtrfs 2G)
btrfs subvolume create "$mnt/backup" > /dev/null
n=8
for i in $(seq 1 $n); do
	"$HOLES" make "$TMP/vm$i.img" 16M 0:1M:$i 8M:64K:$((i + 20))
done
run_all() {	# run_all ROUND: all eight at once, half of them pushed
	local i pids=()
	for i in $(seq 1 $n); do
		if [ $((i % 2)) -eq 0 ]; then
			rvs -q --snapshot "$TMP/vm$i.img" "host:$mnt/backup/" \
				2> "$TMP/err.$i" &
		else
			vs -q --snapshot "$TMP/vm$i.img" "$mnt/backup/" \
				2> "$TMP/err.$i" &
		fi
		pids+=($!)
	done
	for i in $(seq 1 $n); do
		wait "${pids[$((i - 1))]}" ||
			fail "round $1, vm$i: exit $?: $(cat "$TMP/err.$i")"
	done
}
run_all 1
"$HOLES" fill "$TMP/vm3.img" 0:4K:99
run_all 2
snaps=$(ls -A "$mnt/backup/.vmsync-snapshots")
[ "$(printf '%s\n' "$snaps" | grep -c .)" -eq $((2 * n)) ] ||
	fail "not $((2 * n)) snapshots: $snaps"
! printf '%s\n' "$snaps" | grep -q '^\.tmp-' || fail "debris: $snaps"
printf '%s\n' "$snaps" |
	grep -Evq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{6}Z(\.[0-9]+)?$' &&
	fail "unexpected names: $snaps"
for i in $(seq 1 $n); do
	same "$TMP/vm$i.img" "$mnt/backup/vm$i.img"
done
echo "$((2 * n)) snapshots, no debris"
