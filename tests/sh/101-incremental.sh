#!/usr/bin/env bash
# Proves: a second run of an unchanged image reads only the allocated source
# bytes, never the target, and writes nothing (empty operation log); changes
# at unaligned offsets are written as the 4 KiB sectors that hold them, and
# nothing else; the index is trusted between runs.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires qemu-img jq

mnt=$(mkbtrfs 2G)
src=$TMP/disk.img
# Size not a multiple of 4 KiB: the last sector is partial.
"$HOLES" make "$src" $((512 * 1048576 + 1234)) 0:2M:1 64M:5M:2 300M:1M:3 \
	$((512 * 1048576 - 10000)):11234:4
tgt=$mnt/disk.img
vs -q "$src" "$tgt"
same "$src" "$tgt"
data=$(data_ranges "$src" | awk '/^total/{print $2}')

export VMSYNC_DEBUG_OPS=$TMP/ops
: > "$VMSYNC_DEBUG_OPS"
sync_stats "$src" "$tgt"
[ ! -s "$VMSYNC_DEBUG_OPS" ] || fail "unchanged run did: $(head "$VMSYNC_DEBUG_OPS")"
[ "$(stat_of index)" = trusted ] || fail "index not trusted: $(stat_of index)"
[ "$(stat_of written_bytes)" -eq 0 ] || fail "unchanged run wrote"
[ "$(stat_of punched_bytes)" -eq 0 ] || fail "unchanged run punched"
[ "$(stat_of target_read_bytes)" -eq 0 ] || fail "unchanged run read the target"
[ "$(stat_of read_bytes)" -le $((data + 4 * 65536)) ] ||
	fail "read $(stat_of read_bytes) bytes for $data bytes of data"
[ "$(stat_of unchanged_bytes)" -eq "$(stat_of read_bytes)" ] || fail "unchanged_bytes"

# 3 bytes at 12345 (in data), 10 bytes across the 64 KiB block boundary at
# 64M+64K, 5 bytes into the partial last sector.
printf 'abc' | dd of="$src" bs=1 seek=12345 conv=notrunc status=none
printf '0123456789' | dd of="$src" bs=1 seek=$((64 * 1048576 + 65536 - 5)) conv=notrunc status=none
printf 'XYZZY' | dd of="$src" bs=1 seek=$((512 * 1048576 + 1000)) conv=notrunc status=none
: > "$VMSYNC_DEBUG_OPS"
sync_stats "$src" "$tgt"
same "$src" "$tgt"
sort -n -k2 "$VMSYNC_DEBUG_OPS" > "$TMP/ops.sorted"
cat > "$TMP/ops.want" <<EOW
write 12288 4096
write $((64 * 1048576 + 61440)) 4096
write $((64 * 1048576 + 65536)) 4096
write $((512 * 1048576)) 1234
EOW
diff -u "$TMP/ops.want" "$TMP/ops.sorted" || fail "unexpected operations"
[ "$(stat_of written_bytes)" -eq $((4096 + 8192 + 1234)) ] || fail "written_bytes"
[ "$(stat_of index)" = trusted ] || fail "index not trusted after a clean run"
