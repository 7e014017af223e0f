#!/usr/bin/env bash
# Proves: a range the guest discards after the first sync (fallocate -p in
# the source) becomes a hole on the target, punched once and never again; a
# block overwritten with zeros (allocated in the source) becomes a hole too;
# the target never holds data where the source has a hole.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires qemu-img jq fallocate

mnt=$(mkbtrfs 2G)
src=$mnt/src/disk.img
mkdir "$mnt/src" "$mnt/backup"
"$HOLES" make "$src" 1G 0:16M:1 200M:32M:2 900M:8M:3
tgt=$mnt/backup/disk.img
vs -q "$src" "$mnt/backup/"
same "$src" "$tgt"

fallocate -p -o $((204 * 1048576)) -l $((3 * 1048576)) "$src"
dd if=/dev/zero of="$src" bs=64K seek=$((900 * 16 + 5)) count=2 conv=notrunc status=none
sync "$src"
export VMSYNC_DEBUG_OPS=$TMP/ops
: > "$VMSYNC_DEBUG_OPS"
sync_stats "$src" "$mnt/backup/"
same "$src" "$tgt"
sort -n -k2 "$VMSYNC_DEBUG_OPS" > "$TMP/ops.sorted"
cat > "$TMP/ops.want" <<EOW
punch $((204 * 1048576)) $((3 * 1048576))
punch $((900 * 1048576 + 5 * 65536)) $((2 * 65536))
EOW
diff -u "$TMP/ops.want" "$TMP/ops.sorted" || fail "unexpected operations"
[ "$(stat_of punched_bytes)" -eq $((3 * 1048576 + 2 * 65536)) ] || fail "punched_bytes"
[ "$(stat_of written_bytes)" -eq 0 ] || fail "wrote data for a discard"

# The target holds data exactly where the source holds live data.
M=1048576 K=65536
cat > "$TMP/ranges.want" <<EOW
0 $((16 * M))
$((200 * M)) $((4 * M))
$((207 * M)) $((25 * M))
$((900 * M)) $((5 * K))
$((900 * M + 7 * K)) $((8 * M - 7 * K))
total $(( (16 + 29 + 8) * M - 2 * K ))
EOW
diff -u "$TMP/ranges.want" <(data_ranges "$tgt") || fail "target allocation"

# Punched once: the next run does nothing.
: > "$VMSYNC_DEBUG_OPS"
sync_stats "$src" "$mnt/backup/"
[ ! -s "$VMSYNC_DEBUG_OPS" ] || fail "punched again: $(cat "$VMSYNC_DEBUG_OPS")"
