#!/usr/bin/env bash
# Proves: push and pull through the remote protocol (over a pipe command
# in place of ssh) give the same results as a local sync:
#  - push of a sparse raw image: content and allocation equal on the
#    remote side; an unchanged run writes nothing and moves a few hundred
#    bytes; a 1 MiB change of incompressible data moves about 1 MiB; a hole
#    punched in the source is punched on the target;
#  - a 1 GiB image with 256 MiB of data: an unchanged run moves at most
#    64 KiB in total;
#  - pull of the backup back: content and allocation equal, index trusted
#    on the second pull;
#  - a qcow2 image in both views, pushed and pulled;
#  - --compress=none sends compressible data as it is, zlib and zstd
#    shrink it, at any --compress-level; --bwlimit=1M holds 4 MiB of
#    incompressible data back for at least 3 seconds and gives an equal
#    copy (a lower bound only: a slow machine cannot make it fail).
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires qemu-img qemu-io jq

mnt=$(mkbtrfs 3G)
M=1048576
src=$TMP/disk.img
"$HOLES" make "$src" 256M 0:4M:1 100M:8M:2 250M:1M:3
mkdir "$mnt/backup" "$mnt/restore"

rstats() {	# rvs --json ARGS: leaves the JSON in $STATS
	STATS=$(rvs --json --no-progress "$@") || return $?
}
wire() {	# total bytes on the wire of the last run
	echo $(( $(stat_of wire_sent_bytes) + $(stat_of wire_received_bytes) ))
}
alloc_same() {
	diff <(data_ranges "$1") <(data_ranges "$2") ||
		fail "allocation differs: $1 $2"
}

rstats "$src" "host:$mnt/backup/"
same "$src" "$mnt/backup/disk.img"
alloc_same "$src" "$mnt/backup/disk.img"
[ "$(stat_of target)" = "host:$mnt/backup/disk.img" ] ||
	fail "target named $(stat_of target)"
[ "$(stat_of written_bytes)" -eq $((13 * M)) ] || fail "first push wrote $(stat_of written_bytes)"

rstats "$src" "host:$mnt/backup/"
[ "$(stat_of written_bytes)" -eq 0 ] || fail "unchanged push wrote"
[ "$(stat_of index)" = trusted ] || fail "unchanged push: index $(stat_of index)"
[ "$(wire)" -lt 4096 ] || fail "unchanged push moved $(wire) bytes"

# 1 MiB of random data in place, and a 2 MiB hole punched.
head -c $M /dev/urandom | dd of="$src" bs=1M seek=50 conv=notrunc status=none
fallocate -p -o $((100 * M)) -l $((2 * M)) "$src"
rstats "$src" "host:$mnt/backup/"
same "$src" "$mnt/backup/disk.img"
alloc_same "$src" "$mnt/backup/disk.img"
[ "$(stat_of written_bytes)" -eq $M ] || fail "change: wrote $(stat_of written_bytes)"
[ "$(stat_of punched_bytes)" -eq $((2 * M)) ] || fail "change: punched $(stat_of punched_bytes)"
[ "$(stat_of wire_sent_bytes)" -ge $M ] && [ "$(stat_of wire_sent_bytes)" -lt $((M + 64 * 1024)) ] ||
	fail "1 MiB change sent $(stat_of wire_sent_bytes) bytes"

# Pull the backup back, twice.
rstats "host:$mnt/backup/disk.img" "$mnt/restore/"
same "$src" "$mnt/restore/disk.img"
alloc_same "$src" "$mnt/restore/disk.img"
[ "$(stat_of target)" = "$mnt/restore/disk.img" ] || fail "pull target $(stat_of target)"
rstats "host:$mnt/backup/disk.img" "$mnt/restore/"
[ "$(stat_of index)" = trusted ] || fail "second pull: index $(stat_of index)"
[ "$(stat_of written_bytes)" -eq 0 ] || fail "second pull wrote"
[ "$(wire)" -lt 4096 ] || fail "unchanged pull moved $(wire) bytes"

# Wire volume of an unchanged 1 GiB image with 256 MiB of data.
big=$TMP/big.img
"$HOLES" make "$big" 1G 0:64M:4 300M:64M:5 600M:64M:6 960M:64M:7
rvs -q "$big" "host:$mnt/backup/"
rstats "$big" "host:$mnt/backup/"
[ "$(stat_of written_bytes)" -eq 0 ] || fail "big: unchanged run wrote"
[ "$(wire)" -le 65536 ] || fail "big: unchanged run moved $(wire) bytes"
rm "$mnt/backup/big.img" "$mnt/backup/.big.img.vmsync-index"

# qcow2, both views, there and back.
q=$TMP/vm.qcow2
qemu-img create -q -f qcow2 "$q" 64M
qemu-io -f qcow2 -c 'write -P 0x11 0 3M' -c 'write -P 0x22 40M 1M' \
	-c 'discard 1M 1M' "$q" >/dev/null
rvs -q "$q" "host:$mnt/backup/"
rvs -q -O raw "$q" "host:$mnt/backup/"
qemu-img compare -q -f qcow2 -F qcow2 "$q" "$mnt/backup/vm.qcow2" || fail "qcow2 push"
qemu-img check -q -f qcow2 "$mnt/backup/vm.qcow2" || fail "qcow2 push: check"
qemu-img compare -q -f qcow2 -F raw "$q" "$mnt/backup/vm.raw" || fail "raw push"
rvs -q -O raw "host:$q" "$mnt/restore/"
qemu-img compare -q -f qcow2 -F raw "$q" "$mnt/restore/vm.raw" || fail "raw pull"
rvs -q "host:$q" "$mnt/restore/"
qemu-img compare -q -f qcow2 -F qcow2 "$q" "$mnt/restore/vm.qcow2" || fail "qcow2 pull"

# Compression: a compressible image.
txt=$TMP/text.img
{ yes "vmsync compressible line of text" || :; } | head -c $((8 * M)) > "$txt"
for c in none zlib zstd; do
	rstats --compress=$c "$txt" "host:$mnt/backup/$c.img"
	cmp "$txt" "$mnt/backup/$c.img" || fail "--compress=$c: differs"
	eval "sent_$c=$(stat_of wire_sent_bytes)"
done
# shellcheck disable=SC2154
[ "$sent_none" -gt $((8 * M)) ] || fail "--compress=none sent $sent_none"
# shellcheck disable=SC2154
[ "$sent_zlib" -lt $M ] && [ "$sent_zstd" -lt $M ] ||
	fail "compressed: zlib $sent_zlib zstd $sent_zstd"
for l in 1 19; do
	rvs -q --compress=zstd --compress-level=$l "$txt" "host:$mnt/backup/l$l.img"
	cmp "$txt" "$mnt/backup/l$l.img" || fail "--compress-level=$l: differs"
done
head -c $((4 * M)) /dev/urandom > "$TMP/rand.img"
t0=$(date +%s%N)
rvs -q --bwlimit=1M "$TMP/rand.img" "host:$mnt/backup/bw.img"
t1=$(date +%s%N)
cmp "$TMP/rand.img" "$mnt/backup/bw.img" || fail "--bwlimit: differs"
[ $(( (t1 - t0) / 1000000 )) -ge 3000 ] ||
	fail "--bwlimit=1M sent 4 MiB in $(( (t1 - t0) / 1000000 )) ms"
