#!/usr/bin/env bash
# Proves: a pulling client trusts nothing a compromised server says
# (tests/helpers/vspeer.py stands in for "ssh host vmsync --server"):
#  - the local name is the one asked for: an OPENED that names another
#    file (evil.img, a dot file, a name with escapes) is refused, exit 2,
#    one line, and nothing is written; the source's basename and, with
#    -O raw, its .raw form are accepted;
#  - a WRITE at 2^60 or across the declared end, a PUNCH at 2^62 and a
#    RECORD that would wrap into the index header are refused, exit 2, one
#    line naming the local file and the offset; the file keeps the size
#    the server declared;
#  - an ERROR text with terminal escapes and a faked second line is
#    printed escaped (\ooo), on one line, with the server's exit code;
#  - a garbage frame from the server is answered with one ERROR frame.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires python3

mnt=$(mkbtrfs 1G)
PEER=$VMSYNC_TOP/tests/helpers/vspeer.py
export VSPEER_LOG=$TMP/log
dest=$mnt/restore
hvs() {		# SCENARIO ARGS...: vmsync against a hostile server
	local sc=$1
	shift
	"$VMSYNC" -e "python3 $PEER server $sc" "$@"
}
empty() {
	[ -z "$(ls -A "$dest")" ] || { ls -la "$dest"; fail "$1: something was written"; }
}

# Honest answers work, for both names.
mkdir "$dest"
hvs ok -q host:/images/disk.img "$dest/"
[ "$(stat -c %s "$dest/disk.img")" -eq 1048576 ] || fail "ok: no disk.img"
hvs ok -q -O raw host:/images/vm.qcow2 "$dest/"
[ -e "$dest/vm.raw" ] || fail "ok: no vm.raw"
hvs ok -q -O raw host:/images/disk.img "$dest/"

for sc in name-evil name-index name-escape; do
	rm -rf "$dest" && mkdir "$dest"
	must_fail 2 "^vmsync: host: the server names the image '.*', not disk.img as asked: nothing written$" \
		hvs "$sc" host:/images/disk.img "$dest/"
	empty "$sc"
	rm -rf "$dest" && mkdir "$dest"
	must_fail 2 "^vmsync: host: the server names the image" \
		hvs "$sc" host:/images/disk.img "$dest/named.img"
	empty "$sc (to a file)"
done
grep -q "'x\\\\033\[2J\\\\012.img'" "$TMP/stderr" || { cat "$TMP/stderr"; fail "name-escape: not escaped"; }

for sc in write-far write-end punch-far record-far; do
	rm -rf "$dest" && mkdir "$dest"
	: > "$VSPEER_LOG"
	must_fail 2 "^vmsync: $dest/disk.img: (offset|entry) [0-9]+: [A-Z]+ of [0-9]+ [a-z]+ past the end of the image \([0-9]+ [a-z]+\)$" \
		hvs "$sc" host:/images/disk.img "$dest/"
	[ "$(stat -c %s "$dest/disk.img")" -eq 1048576 ] ||
		fail "$sc: the file is $(stat -c %s "$dest/disk.img") bytes"
	grep -q "^ERROR 2 '$dest/disk.img: " "$VSPEER_LOG" ||
		{ cat "$VSPEER_LOG"; fail "$sc: the server was not told"; }
	echo "$sc: refused"
done

# Escapes in the server's message.
rm -rf "$dest" && mkdir "$dest"
must_fail 3 '^vmsync: host: disk\\033\]0;pwned\\007 full\\012vmsync: all good\\015\\033\[2K$' \
	hvs error-escape host:/images/disk.img "$dest/"

# Garbage from the server: the client says so, and tells the server.
: > "$VSPEER_LOG"
must_fail 2 "^vmsync: host: /images/disk.img: garbage on the wire \(bad checksum\)$" \
	hvs garbage host:/images/disk.img "$dest/"
grep -qx "ERROR 2 'host: /images/disk.img: garbage on the wire (bad checksum)'" "$VSPEER_LOG" ||
	{ cat "$VSPEER_LOG"; fail "garbage: no ERROR frame back"; }
