#!/usr/bin/env bash
# Proves: a signal is honoured anywhere in an image, not only while data is
# being read.  A 4 TiB image holds 1 MiB of data at its start and holes for
# the rest; SIGTERM lands just after that data is written, while vmsync
# walks the holes.  The run must stop there like any interrupted run: exit 4
# with a one-line "interrupted" error and status 4 in the JSON, the index
# left dirty (the next run says "rebuilt"), and the next run completes it.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires jq qemu-img

mnt=$(mkbtrfs 1G)
src=$mnt/disk.img
tgt=$mnt/backup.img
"$HOLES" make "$src" 4096G 0:1M:1
[ "$(stat -c %s "$src")" -eq $((4096 << 30)) ] || skip "no 4 TiB sparse file here"
vs -q "$src" "$tgt"
qemu-img compare -q -f raw -F raw "$src" "$tgt" || fail "first sync differs"

# Change the data, start a run, and stop it (SIGSTOP, so that the signal is
# taken while the holes are still ahead) once the data is written.
"$HOLES" fill "$src" 0:1M:2
export VMSYNC_DEBUG_OPS=$TMP/ops
: > "$TMP/ops"
"$VMSYNC" --json --no-progress "$src" "$tgt" > "$TMP/out" 2> "$TMP/err" &
pid=$!
for _ in $(seq 1 2000); do
	[ -s "$TMP/ops" ] && break
	kill -0 "$pid" 2> /dev/null || break
	sleep 0.005
done
kill -STOP "$pid" 2> /dev/null || true
kill -TERM "$pid" 2> /dev/null || true
kill -CONT "$pid" 2> /dev/null || true
rc=0
wait "$pid" || rc=$?
cat "$TMP/err"
[ -s "$TMP/ops" ] || fail "the run wrote nothing"
[ "$rc" -eq 4 ] || fail "exit $rc, not 4"
grep -q '^vmsync: .*interrupted' "$TMP/err" || fail "no 'interrupted' error"
[ "$(wc -l < "$TMP/err")" -eq 1 ] || fail "not a one-line error"
[ "$(jq '.images[0].status' "$TMP/out")" -eq 4 ] ||
	fail "JSON status $(jq '.images[0].status' "$TMP/out") for an interrupted image"

: > "$TMP/ops"
sync_stats "$src" "$tgt"
[ "$(stat_of index)" = rebuilt ] ||
	fail "index $(stat_of index) after an interrupted run: it ran to the end"
qemu-img compare -q -f raw -F raw "$src" "$tgt" || fail "not equal after the next run"
diff <(data_ranges "$src") <(data_ranges "$tgt") || fail "allocation differs"
