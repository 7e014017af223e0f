#!/usr/bin/env bash
# Proves: --timeout SECONDS ends a stalled session with one line and an
# exit code, and releases what it held:
#  - vmsync --server --timeout 2, whose client stops sending after BEGIN,
#    hangs up about 2 s later, while that client is still connected; the
#    target's lock, held until then (a second run exits 6), is released
#    (a second run succeeds);
#  - a client with --timeout 2 whose server stops answering after HELLO
#    exits 3 pushing and 2 pulling, with one "timed out" line (naming
#    the image pulled), about 2 s later, ending the stalled remote
#    command;
#  - --timeout 0 means none; a negative or non-numeric value is a usage
#    error.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires python3

mnt=$(mkbtrfs 1G)
root=$mnt/root
mkdir -p "$root/images"
PEER=$VMSYNC_TOP/tests/helpers/vspeer.py
src=$TMP/disk.img
"$HOLES" make "$src" 1M 0:64K:1

# A client that stalls after BEGIN, and stays connected for 30 s.
VSPEER_HOLD=30 python3 "$PEER" client stall images/ -- "$VMSYNC" --server \
	--timeout 2 --root "$root" > "$TMP/peer" 2>&1 &
peer=$!
cleanup_fn "kill $peer 2>/dev/null"
for _ in $(seq 100); do
	grep -q '^BEGUN' "$TMP/peer" && break
	kill -0 "$peer" 2>/dev/null || break
	sleep 0.05
done
grep -q '^BEGUN' "$TMP/peer" || { cat "$TMP/peer"; fail "the session did not begin"; }
must_fail 6 "^vmsync: host: .*in use by another" rvs "$src" "host:$root/images/t.img"
for _ in $(seq 200); do
	grep -q '^eof after' "$TMP/peer" && break
	sleep 0.05
done
grep -Eq '^eof after [1-5]\.[0-9] s$' "$TMP/peer" ||
	{ cat "$TMP/peer"; fail "the server did not time out after 2 s"; }
kill -0 "$peer" 2>/dev/null || fail "the stalled client is gone"
rvs -q "$src" "host:$root/images/t.img"
same "$src" "$root/images/t.img"
kill "$peer"

# A server that stalls after HELLO.
for dir in push pull; do
	code=3 args=("$src" "host:/backup/") image=
	[ $dir = pull ] && code=2 args=("host:/images/disk.img" "$TMP/") \
		image="/images/disk.img: "
	start=$(date +%s)
	must_fail $code "^vmsync: host: ${image}timed out: nothing received for 2 seconds$" \
		"$VMSYNC" --timeout 2 -e "python3 $PEER server stall" "${args[@]}"
	secs=$(( $(date +%s) - start ))
	[ "$secs" -le 10 ] || fail "$dir: the client took $secs s"
	echo "$dir: timed out in $secs s"
done

rvs -q --timeout 0 "$src" "host:$root/images/t.img"
must_fail 1 "^vmsync: --timeout '-1'" vs --timeout -1 "$src" "$TMP/x.img"
must_fail 1 "^vmsync: --timeout 'soon'" vs --timeout soon "$src" "$TMP/x.img"
