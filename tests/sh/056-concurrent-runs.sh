#!/usr/bin/env bash
# Proves: two runs never work on one target at once.  While another process
# holds flock(2) on the target, vmsync exits 6 with a one-line message
# naming the target, for a real run, a --checksum run and a dry run, and
# neither the target nor its index changes; once the lock is released the
# next run trusts the index.  Two real runs on a new target, the second
# started while the first is running: one completes, the other exits 6
# with a one-line message (never another error, never both), and the
# target ends equal to the source with a clean index.  The two must
# overlap: when the second started only after the first was done, it is
# tried again with a first run slowed down (a push through --bwlimit).
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires qemu-img jq flock

mnt=$(mkbtrfs 2G)
src=$TMP/disk.img
"$HOLES" make "$src" 256M 0:1M:1 128M:1M:2
mkdir "$mnt/backup"
tgt=$mnt/backup/disk.img
idx=$mnt/backup/.disk.img.vmsync-index
vs -q "$src" "$mnt/backup/"
"$HOLES" fill "$src" 0:4K:3 64M:64K:4
cp --sparse=always "$tgt" "$TMP/backup.copy"
isum=$(md5sum < "$idx")
export VMSYNC_DEBUG_OPS=$TMP/ops
: > "$TMP/ops"

# Hold an exclusive lock on the target until killed.
hold_lock "$tgt"

for opt in "" -c -n -q; do
	# shellcheck disable=SC2086
	must_fail 6 "^vmsync: $tgt: .*in use by another vmsync run$" \
		vs $opt "$src" "$mnt/backup/"
done
must_fail 6 "^vmsync: $tgt: .*in use" vs "$src" "$tgt"
# --json still prints its object, with the lock's status.
rc=0
out=$(vs --json "$src" "$tgt" 2> "$TMP/err") || rc=$?
[ "$rc" -eq 6 ] || fail "--json: exit $rc, want 6"
[ "$(printf '%s' "$out" | jq -r '.exit_code, .images[0].status' | tr '\n' ' ')" = "6 6 " ] ||
	fail "--json under a lock: $out"
kill "$holder"
wait "$holder" 2>/dev/null || true
[ ! -s "$TMP/ops" ] || fail "locked runs did: $(cat "$TMP/ops")"
cmp "$TMP/backup.copy" "$tgt" || fail "locked target changed"
[ "$(md5sum < "$idx")" = "$isum" ] || fail "index changed by a locked run"
sync_stats "$src" "$tgt"
[ "$(stat_of index)" = trusted ] || fail "index not trusted after the locked runs"
[ "$(stat_of written_bytes)" -eq $((4096 + 65536)) ] ||
	fail "wrote $(stat_of written_bytes) bytes after the lock was released"
same "$src" "$tgt"

# Two real runs at once, on a new target with enough data to overlap.  If
# the first was done before the second started, again with the first
# slowed down (a push through --bwlimit) and the second started once the
# first has created the target.
unset VMSYNC_DEBUG_OPS
big=$TMP/big.img
"$HOLES" make "$big" 1G 0:48M:5 300M:48M:6 900M:48M:7
overlapped=0
for bw in "" 64M 16M; do
	rm -f "$mnt/backup/big.img" "$mnt/backup/.big.img.vmsync-index"
	if [ -z "$bw" ]; then
		"$VMSYNC" --no-progress "$big" "$mnt/backup/" 2> "$TMP/err1" & p1=$!
	else
		rvs --no-progress --bwlimit="$bw" "$big" "host:$mnt/backup/" \
			2> "$TMP/err1" & p1=$!
		for _ in $(seq 1000); do
			[ -e "$mnt/backup/big.img" ] && break
			kill -0 "$p1" 2> /dev/null || break
			sleep 0.01
		done
	fi
	"$VMSYNC" --no-progress "$big" "$mnt/backup/" 2> "$TMP/err2" & p2=$!
	rc1=0 rc2=0
	wait "$p1" || rc1=$?
	wait "$p2" || rc2=$?
	for r in "1 $rc1" "2 $rc2"; do
		# shellcheck disable=SC2086
		set -- $r
		case $2 in
		0) [ ! -s "$TMP/err$1" ] || fail "run $1 succeeded with: $(cat "$TMP/err$1")" ;;
		6) grep -Eq "^vmsync: (host: )?$mnt/backup/big.img: .*in use by another vmsync run$" \
			"$TMP/err$1" || fail "run $1: $(cat "$TMP/err$1")"
		   [ "$(wc -l < "$TMP/err$1")" -eq 1 ] || fail "run $1: more than one line"
		   overlapped=1 ;;
		*) fail "concurrent run $1: exit $2: $(cat "$TMP/err$1")" ;;
		esac
	done
	[ "$rc1" -eq 0 ] || [ "$rc2" -eq 0 ] || fail "both concurrent runs failed"
	same "$big" "$mnt/backup/big.img"
	sync_stats "$big" "$mnt/backup/"
	[ "$(stat_of index)" = trusted ] || fail "after concurrent runs: index $(stat_of index)"
	[ "$(stat_of written_bytes)" -eq 0 ] || fail "after concurrent runs: rewrote"
	[ "$overlapped" -eq 1 ] && break
	echo "${bw:-unlimited}: the runs did not overlap"
done
[ "$overlapped" -eq 1 ] || fail "two runs on one target never overlapped"
