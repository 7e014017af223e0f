#!/usr/bin/env bash
# Proves: a server that receives garbage still sends one ERROR frame
# before it hangs up, so the client prints one line saying what was wrong
# (not "connection closed"): with byte N of the client's stream inverted
# on the way (tests/helpers/vspeer.py flip-out), at N in BEGIN and in the
# data of a push of 4 MiB, the client exits 3 (a push's protocol error)
# with "client: garbage on the wire"; in OPEN, before the server knows
# the direction, with 1 (the server's category for a client it cannot
# read); the next run completes.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires python3

mnt=$(mkbtrfs 1G)
PEER=$VMSYNC_TOP/tests/helpers/vspeer.py
src=$TMP/disk.img
head -c 4M /dev/urandom > "$src"
mkdir "$mnt/b"

# HELLO is 32 bytes; OPEN follows; BEGIN comes after the server's OPENED.
for n in 40 300 100000 3000000; do
	code=3
	[ "$n" -eq 40 ] && code=1
	must_fail $code "^vmsync: host: client: garbage on the wire \(bad checksum\)$" \
		"$VMSYNC" -e "python3 $PEER flip-out $n" --remote-vmsync "$VMSYNC" \
		"$src" "host:$mnt/b/"
	echo "flip at $n: reported"
done
rvs -q "$src" "host:$mnt/b/"
same "$src" "$mnt/b/disk.img"
