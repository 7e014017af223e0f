#!/usr/bin/env bash
# Proves: --dry-run changes nothing (target bytes, times, index, allocation),
# reports what a real run then does (same bytes written and punched), and
# creates nothing for a target that does not exist yet.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires qemu-img jq fallocate

mnt=$(mkbtrfs 2G)
src=$TMP/disk.img
tgt=$mnt/disk.img
idx=$mnt/.disk.img.vmsync-index
"$HOLES" make "$src" 128M 0:4M:1 64M:4M:2

# No target yet: nothing is created.
out=$(vs -n "$src" "$mnt/")
echo "$out" | grep -q 'would write 8388608 bytes, punch 0 bytes (dry run)' || fail "report: $out"
[ ! -e "$tgt" ] && [ ! -e "$idx" ] || fail "dry run created files"

vs -q "$src" "$tgt"
"$HOLES" fill "$src" 100:5000:3 $((65 * 1048576)):70000:4
fallocate -p -o $((1 * 1048576)) -l 1M "$src"
before=$(stat -c '%s %Y %Z' "$tgt" "$idx"; md5sum "$tgt" "$idx"; data_ranges "$tgt")
export VMSYNC_DEBUG_OPS=$TMP/ops.dry
sync_stats -n "$src" "$tgt"
dry_w=$(stat_of written_bytes) dry_p=$(stat_of punched_bytes)
after=$(stat -c '%s %Y %Z' "$tgt" "$idx"; md5sum "$tgt" "$idx"; data_ranges "$tgt")
[ "$before" = "$after" ] || fail "dry run changed the target or its index"
[ "$dry_w" -gt 0 ] && [ "$dry_p" -eq 1048576 ] || fail "dry run reported $dry_w/$dry_p"
VMSYNC_DEBUG_OPS= vs -n -v "$src" "$tgt" > "$TMP/list"
grep -q "^would punch 1048576 bytes at offset 1048576$" "$TMP/list" || fail "-n -v list: $(cat "$TMP/list")"

export VMSYNC_DEBUG_OPS=$TMP/ops.real
sync_stats "$src" "$tgt"
same "$src" "$tgt"
[ "$(stat_of written_bytes)" -eq "$dry_w" ] || fail "real run wrote $(stat_of written_bytes), dry run said $dry_w"
[ "$(stat_of punched_bytes)" -eq "$dry_p" ] || fail "punch differs"
diff -u "$TMP/ops.dry" "$TMP/ops.real" || fail "dry run listed other operations"
