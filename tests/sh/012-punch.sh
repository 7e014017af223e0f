#!/usr/bin/env bash
# Proves: holes made in the source after a sync become holes on the target.
# A range of whole blocks punched with fallocate is punched once on the
# target, leaving the target's allocation equal to the source's; a block
# overwritten with zeros, and a zeroed sector inside a block (both still
# allocated in the source), become holes on the target too; and a later
# run punches nothing.  (Sectors punched inside a block of the source:
# 027-punch-sectors.sh.)
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires jq fallocate

mnt=$(mkbtrfs 2G)
src=$TMP/disk.img
M=1048576
"$HOLES" make "$src" 512M 0:8M:1 100M:4M:2 300M:2M:3
tgt=$mnt/disk.img
export VMSYNC_DEBUG_OPS=$TMP/ops

vs -q "$src" "$tgt"
same "$src" "$tgt"

# Whole blocks: 1 MiB at 2 MiB.
fallocate -p -o $((2 * M)) -l $M "$src"
data_ranges "$src" | grep -q "^$((3 * M)) " ||
	fail "fallocate -p left 2 MiB..3 MiB of the source allocated"

: > "$TMP/ops"
sync_stats "$src" "$tgt"
same "$src" "$tgt"
diff <(data_ranges "$src") <(data_ranges "$tgt") ||
	fail "allocation differs after punching the source"
echo "punch $((2 * M)) $M" | diff - "$TMP/ops" || fail "not exactly one punch"
[ "$(stat_of punched_bytes)" -eq $M ] || fail "punched_bytes"
[ "$(stat_of written_bytes)" -eq 0 ] || fail "wrote while punching"
[ "$(stat_of index)" = trusted ] || fail "index not trusted"

: > "$TMP/ops"
sync_stats "$src" "$tgt"
[ ! -s "$TMP/ops" ] || fail "third run did something: $(cat "$TMP/ops")"
[ "$(stat_of punched_bytes)" -eq 0 ] || fail "third run punched"

# Zeros written over data: the source stays allocated, the target gets holes.
# A whole 64 KiB block, and one sector inside another block.
dd if=/dev/zero of="$src" bs=64K seek=$((300 * 16 + 3)) count=1 conv=notrunc status=none
dd if=/dev/zero of="$src" bs=4K seek=$((300 * 256 + 80 + 5)) count=1 conv=notrunc status=none
zoff=$((300 * M + 3 * 65536))
soff=$((300 * M + 80 * 4096 + 5 * 4096))
data_ranges "$src" > "$TMP/src.ranges"
grep -q "^$((300 * M)) $((2 * M))\$" "$TMP/src.ranges" ||
	fail "zeros written with dd are not allocated in the source"
: > "$TMP/ops"
sync_stats "$src" "$tgt"
same "$src" "$tgt"
cat > "$TMP/expected" <<EOF
punch $zoff 65536
punch $soff 4096
EOF
diff "$TMP/expected" "$TMP/ops" || fail "zero blocks not punched once each"
[ "$(stat_of written_bytes)" -eq 0 ] || fail "wrote zeros"
cat > "$TMP/expected" <<EOF
$((300 * M)) $((zoff - 300 * M))
$((zoff + 65536)) $((soff - zoff - 65536))
$((soff + 4096)) $((302 * M - soff - 4096))
EOF
data_ranges "$tgt" | awk -v lo=$((300 * M)) -v hi=$((302 * M)) \
	'$1 != "total" && $1 >= lo && $1 < hi' > "$TMP/tgt.ranges"
diff "$TMP/expected" "$TMP/tgt.ranges" || fail "zero ranges are not holes on the target"
[ "$(alloc "$tgt")" -lt "$(alloc "$src")" ] || fail "target holds the zeros"

: > "$TMP/ops"
sync_stats "$src" "$tgt"
[ ! -s "$TMP/ops" ] || fail "zeros punched again: $(cat "$TMP/ops")"
[ "$(stat_of index)" = trusted ] || fail "index not trusted"
same "$src" "$tgt"
