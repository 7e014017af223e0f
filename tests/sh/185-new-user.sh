#!/usr/bin/env bash
# Proves the small things a new user trips on:
#  - -h prints the help, as --help does (exit 0);
#  - a missing last component of DEST is made, as rsync does (its parent
#    must exist: exit 3 otherwise); a dry run makes nothing;
#  - --json: a failed image carries its error line; a dry run says it
#    was one, in each image and in the totals.
#  - a push makes the missing last component of its DEST too, beneath a
#    server's --root only (h:../esc/ makes nothing outside it);
#  - a remote side without vmsync says to install it or pass
#    --remote-vmsync; -v says an existing file without an index is
#    compared with;
#  - --bwlimit paces a local sync too: 32 MiB read and 32 MiB written at
#    16 MiB/s take at least 3 s (a floor the pacing sets, not a speed).
. "$VMSYNC_TOP/tests/functions.sh"
requires jq

"$VMSYNC" -h > "$TMP/h" || fail "-h: exit $?"
"$VMSYNC" --help > "$TMP/help"
cmp "$TMP/h" "$TMP/help" || fail "-h is not --help"

src=$TMP/disk.img
"$HOLES" make "$src" 8M 0:1M:1
vs -q -n "$src" "$TMP/new/"
[ ! -e "$TMP/new" ] || fail "a dry run made DEST"
vs -q "$src" "$TMP/new/"
same "$src" "$TMP/new/disk.img"
must_fail 3 "target directory" "$VMSYNC" "$src" "$TMP/no/such/"

out=$("$VMSYNC" --json -n "$src" "$TMP/new/")
[ "$(printf '%s' "$out" | jq '.images[0].dry_run and .totals.dry_run')" = true ] ||
	fail "dry run JSON: $out"
out=$("$VMSYNC" --json "$src" "$TMP/new/")
[ "$(printf '%s' "$out" | jq '.images[0].dry_run')" = false ] || fail "JSON: $out"
rc=0
out=$("$VMSYNC" --json "$TMP/missing.img" "$src" "$TMP/new/" 2> /dev/null) || rc=$?
[ $rc -eq 4 ] || fail "one failed image of two: exit $rc"
printf '%s' "$out" | jq -r '.images[0].error' | grep -q "missing.img: cannot open source" ||
	fail "the failed image's JSON has no error: $out"
[ "$(printf '%s' "$out" | jq '.images[1] | has("error")')" = false ] || fail "JSON: $out"
rvs -q "$src" "host:$TMP/pushed/"
same "$src" "$TMP/pushed/disk.img"
mkdir "$TMP/root"
printf '#!/bin/sh\nexec "%s" --server --root="%s"\n' "$VMSYNC" "$TMP/root" > "$TMP/fc"
chmod +x "$TMP/fc"
"$VMSYNC" -q -e "$TMP/fc" "$src" host:sub/ || fail "confined push into a new sub/: exit $?"
same "$src" "$TMP/root/sub/disk.img"
must_fail 1 "outside" "$VMSYNC" -e "$TMP/fc" "$src" host:../esc/
[ ! -e "$TMP/esc" ] || fail "a confined push made a directory outside its root"
rc=0
"$VMSYNC" -e "$LOCALSH" --remote-vmsync /nowhere/vmsync "$src" host:/tmp/ 2> "$TMP/err" || rc=$?
[ $rc -eq 3 ] || fail "no remote vmsync: exit $rc"
grep -qx "vmsync: host: no /nowhere/vmsync there to run: install vmsync on host, or name it with --remote-vmsync PATH" "$TMP/err" ||
	fail "no remote vmsync: $(cat "$TMP/err")"
cp "$src" "$TMP/plain.img"
"$VMSYNC" -v "$src" "$TMP/plain.img" 2> "$TMP/err"
grep -q "plain.img: an existing file without an index: comparing with it" "$TMP/err" ||
	fail "-v: $(cat "$TMP/err")"

head -c $((32 << 20)) /dev/urandom > "$TMP/r.img"
out=$("$VMSYNC" --json --bwlimit=16M "$TMP/r.img" "$TMP/new/")
same "$TMP/r.img" "$TMP/new/r.img"
t=$(printf '%s' "$out" | jq '.totals.elapsed_seconds')
awk -v t="$t" 'BEGIN { exit !(t >= 3.0) }' || fail "--bwlimit=16M: 64 MiB of I/O in $t s"
echo "help, DEST, JSON, --bwlimit as a new user expects"
