#!/usr/bin/env bash
# Proves: a UNIX socket is not a disk image.  As the source it is refused
# at once (exit 2) with a one-line error naming it, and no target is made;
# as the target it is refused (exit 3), no index is made beside it, and it
# is still a socket.
. "$VMSYNC_TOP/tests/functions.sh"
requires python3 timeout

src=$TMP/disk.img
"$HOLES" make "$src" 16M 0:1M:1 8M:64K:2
out=$TMP/out
mkdir "$out"
# A socket bound and left behind by a process that exited.
python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' \
	"$TMP/sock"
[ -S "$TMP/sock" ] || fail "no socket made"

must_fail 2 "^vmsync: $TMP/sock: " timeout 5 "$VMSYNC" "$TMP/sock" "$out/"
must_fail 2 "^vmsync: $TMP/sock: " timeout 5 "$VMSYNC" --format=raw "$TMP/sock" "$out/x.img"
[ -z "$(ls -A "$out")" ] || fail "socket source: created $(ls -A "$out")"

must_fail 3 "^vmsync: $TMP/sock: .*not a regular file or a block device" \
	timeout 5 "$VMSYNC" "$src" "$TMP/sock"
[ -S "$TMP/sock" ] || fail "target socket replaced"
[ ! -e "$TMP/.sock.vmsync-index" ] || fail "index made for a socket target"
