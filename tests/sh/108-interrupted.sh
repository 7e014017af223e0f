#!/usr/bin/env bash
# Proves: a run stopped mid-way -- SIGTERM (exit 4, one-line message) or
# kill -9 -- leaves the index dirty, so the next run does not trust it,
# compares with the target, and ends equal to the source.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires qemu-img jq

mnt=$(mkbtrfs 3G)
src=$mnt/disk.img
"$HOLES" make "$src" 2G 0:400M:1 1G:400M:2
mkdir "$mnt/backup"
tgt=$mnt/backup/disk.img

# Start a sync and signal it once it has written something.
interrupt() {
	local sig=$1 rc=0 i
	rm -f "$tgt"
	"$VMSYNC" --no-progress "$src" "$mnt/backup/" 2> "$TMP/err" &
	local pid=$!
	for i in $(seq 1000); do
		[ -f "$tgt" ] && [ "$(du -k "$tgt" | cut -f1)" -gt 1024 ] && break
		sleep 0.01
	done
	kill "-$sig" "$pid" 2>/dev/null || true
	wait "$pid" || rc=$?
	echo "$rc"
}

for sig in TERM KILL; do
	# Make sure the kill lands mid-run (a fast machine may finish first).
	for try in 1 2 3 4 5; do
		rc=$(interrupt $sig)
		[ "$rc" -ne 0 ] && break
	done
	case $sig in
	TERM)
		[ "$rc" -eq 4 ] || fail "SIGTERM: exit $rc, want 4"
		grep -q 'interrupted' "$TMP/err" || fail "no message: $(cat "$TMP/err")"
		[ "$(wc -l < "$TMP/err")" -eq 1 ] || fail "more than one line: $(cat "$TMP/err")"
		;;
	KILL)
		[ "$rc" -eq 137 ] || fail "SIGKILL: exit $rc"
		;;
	esac
	cmp -s "$src" "$tgt" && fail "$sig: target complete after an interrupted run?"
	sync_stats "$src" "$mnt/backup/"
	[ "$(stat_of index)" = rebuilt ] || fail "$sig: dirty index trusted"
	same "$src" "$tgt"
	sync_stats "$src" "$mnt/backup/"
	[ "$(stat_of index)" = trusted ] || fail "$sig: index not trusted after recovery"
	[ "$(stat_of written_bytes)" -eq 0 ] || fail "$sig: recovered target rewritten"
done
