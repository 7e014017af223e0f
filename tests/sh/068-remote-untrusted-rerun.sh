#!/usr/bin/env bash
# Proves: a remote target whose index is not trusted hashes its own blocks,
# so that only the blocks that differ cross the wire:
#  - a push cut in the middle of an 8 MiB change to a 160 MiB image with
#    100 MiB of data leaves a dirty index; the rerun ("rebuilt") sends
#    about the change (less than 3 times it plus 1 MiB), not the image,
#    and the target equals the source; the run after it is trusted, moves
#    a few KiB and writes nothing;
#  - a backup whose index was deleted (a restored target): a push after a
#    2 MiB hole was punched in the source sends less than 1 MiB, writes
#    nothing and punches the hole; the next run is trusted and moves a few
#    KiB (the entries recorded are right);
#  - an in-place pull restore over an identical copy whose index was
#    deleted receives less than 1% of the image, writes nothing, and the
#    copy equals the backup; the next pull trusts the index it recorded.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires jq od

mnt=$(mkbtrfs 1G)
M=1048576
FAULT=$VMSYNC_TOP/tests/helpers/faultsh
src=$TMP/disk.img
"$HOLES" make "$src" 160M 0:40M:1 60M:40M:2 130M:20M:3
mkdir "$mnt/b" "$mnt/restore"
tgt=$mnt/b/disk.img
idx=$mnt/b/.disk.img.vmsync-index

rstats() {	# rvs --json ARGS: leaves the JSON in $STATS
	STATS=$(rvs --json --no-progress "$@") || return $?
}
wire() {	# total bytes on the wire of the last run
	echo $(( $(stat_of wire_sent_bytes) + $(stat_of wire_received_bytes) ))
}
dirty() {	# is the dirty flag (bit 0 of the u32 LE at 20) of index $1 set?
	[ $(( $(od -An -tu4 -j20 -N4 --endian=little "$1") & 1 )) -eq 1 ]
}

rvs -q "$src" "host:$mnt/b/"
same "$src" "$tgt"

# An 8 MiB change, pushed through a stream cut after 3 MiB of requests.
change=$((8 * M))
"$HOLES" fill "$src" 70M:8M:9
rc=0
"$VMSYNC" -e "$FAULT cut-out $((3 * M))" --remote-vmsync "$VMSYNC" "$src" \
	"host:$mnt/b/" 2> "$TMP/err" || rc=$?
[ "$rc" -eq 3 ] || { cat "$TMP/err"; fail "cut push: exit $rc, want 3"; }
dirty "$idx" || fail "cut push: the index is not dirty"
cmp -s "$src" "$tgt" && fail "cut push: the target is already whole"

rstats "$src" "host:$mnt/b/"
same "$src" "$tgt"
[ "$(stat_of index)" = rebuilt ] || fail "rerun: index $(stat_of index)"
sent=$(stat_of wire_sent_bytes)
echo "rerun after the cut push: sent $sent bytes, wrote $(stat_of written_bytes)"
[ "$sent" -lt $((3 * change + M)) ] ||
	fail "rerun after the cut push sent $sent bytes for an 8 MiB change"
[ "$(stat_of written_bytes)" -le "$change" ] ||
	fail "rerun wrote $(stat_of written_bytes) bytes"

rstats "$src" "host:$mnt/b/"
[ "$(stat_of index)" = trusted ] || fail "after the rerun: index $(stat_of index)"
[ "$(stat_of written_bytes)" -eq 0 ] || fail "after the rerun: wrote"
[ "$(wire)" -lt 4096 ] || fail "after the rerun: moved $(wire) bytes"

# A restored backup: its index is gone.  A hole punched in the source.
rm "$idx"
fallocate -p -o $((10 * M)) -l $((2 * M)) "$src"
rstats "$src" "host:$mnt/b/"
same "$src" "$tgt"
echo "push without an index: sent $(stat_of wire_sent_bytes) bytes"
[ "$(stat_of wire_sent_bytes)" -lt "$M" ] ||
	fail "push without an index sent $(stat_of wire_sent_bytes) bytes"
[ "$(stat_of written_bytes)" -eq 0 ] || fail "push without an index wrote"
[ "$(stat_of punched_bytes)" -eq $((2 * M)) ] ||
	fail "push without an index punched $(stat_of punched_bytes)"
rstats "$src" "host:$mnt/b/"
[ "$(stat_of index)" = trusted ] && [ "$(wire)" -lt 4096 ] ||
	fail "after the push without an index: index $(stat_of index), $(wire) bytes"

# An in-place pull restore over an identical copy without an index.
cp --reflink=always "$tgt" "$mnt/restore/disk.img"
rstats "host:$tgt" "$mnt/restore/"
[ "$(stat_of index)" = rebuilt ] || fail "pull: index $(stat_of index)"
got=$(stat_of wire_received_bytes)
echo "pull over an identical copy: received $got bytes"
[ "$got" -lt $((160 * M / 100)) ] || fail "pull over an identical copy received $got bytes"
[ "$(stat_of written_bytes)" -eq 0 ] || fail "pull wrote $(stat_of written_bytes)"
same "$src" "$mnt/restore/disk.img"
rstats "host:$tgt" "$mnt/restore/"
[ "$(stat_of index)" = trusted ] && [ "$(stat_of written_bytes)" -eq 0 ] &&
	[ "$(wire)" -lt 4096 ] ||
	fail "second pull: index $(stat_of index), $(wire) bytes"
same "$src" "$mnt/restore/disk.img"
