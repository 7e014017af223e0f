#!/usr/bin/env bash
# Proves: incompressible data crosses the wire as it is, and what
# compresses still shrinks:
#  - 64 MiB of random data pushed with --compress=zstd, and with zlib at
#    level 9, sends the data and at most 128 KiB more (no block is sent
#    grown by compression), and arrives intact;
#  - an image of 32 MiB random data then 32 MiB of text sends the random
#    half as it is and the text compressed: less than 33 MiB in all.
# That the probe spares the compressor's time is shown by the unit test
# of its decision (test-wirecomp), not timed here.
. "$VMSYNC_TOP/tests/functions.sh"
requires jq

M=1048576
dst=$TMP/backup
mkdir "$dst"
rnd=$TMP/random.img
head -c $((64 * M)) /dev/urandom > "$rnd"

rstats() {	# rvs --json ARGS: leaves the JSON in $STATS
	STATS=$(rvs --json --no-progress "$@") || return $?
}
rstats --compress=zstd "$rnd" "host:$dst/zstd.img"
cmp "$rnd" "$dst/zstd.img" || fail "--compress=zstd: differs"
sent=$(stat_of wire_sent_bytes)
[ $((sent >= 64 * M && sent <= 64 * M + 128 * 1024)) = 1 ] ||
	fail "64 MiB of random data: sent $sent bytes"

rstats --compress=zlib --compress-level=9 "$rnd" "host:$dst/zlib.img"
cmp "$rnd" "$dst/zlib.img" || fail "--compress=zlib: differs"
sent=$(stat_of wire_sent_bytes)
[ $((sent >= 64 * M && sent <= 64 * M + 128 * 1024)) = 1 ] ||
	fail "64 MiB of random data, zlib 9: sent $sent bytes"

mix=$TMP/mix.img
head -c $((32 * M)) "$rnd" > "$mix"
{ yes "Dec  4 12:00:00 host sshd[812]: session opened for user root" ||
	:; } | head -c $((32 * M)) >> "$mix"
rstats --compress=zstd "$mix" "host:$dst/mix.img"
cmp "$mix" "$dst/mix.img" || fail "mixed image: differs"
sent=$(stat_of wire_sent_bytes)
[ $((sent >= 32 * M && sent < 33 * M)) = 1 ] ||
	fail "32 MiB random + 32 MiB text: sent $sent bytes"
