#!/usr/bin/env bash
# Proves: --checksum (-c) ignores the index and compares the source with the
# target itself.  A target damaged with dd gets exactly the damaged sector
# rewritten and its index rebuilt, and the run after it trusts the index
# and does nothing; on an equal target --checksum reads all of the
# target's data and writes nothing.  (Damage the index cannot see, made
# below the filesystem: 028-checksum-below-fs.sh.)
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires jq

mnt=$(mkbtrfs 1G)
src=$TMP/disk.img
M=1048576
"$HOLES" make "$src" 64M 0:4M:1 30M:1M:2
export VMSYNC_DEBUG_OPS=$TMP/ops

run() {	# run ARGS...: sync_stats with an empty operation log
	: > "$TMP/ops"
	sync_stats "$@"
}

# --- An ordinary CoW target, damaged with dd.
tgt=$mnt/disk.img
vs -q "$src" "$tgt"
printf '\001' | dd of="$tgt" bs=1 seek=$((30 * M + 4097)) conv=notrunc status=none
run -c "$src" "$tgt"
same "$src" "$tgt"
[ "$(stat_of index)" = rebuilt ] || fail "dd: index $(stat_of index)"
[ "$(stat_of written_bytes)" -eq 4096 ] || fail "dd: wrote $(stat_of written_bytes)"
echo "write $((30 * M + 4096)) 4096" | diff - "$TMP/ops" || fail "dd: wrong operations"
run "$src" "$tgt"
[ "$(stat_of index)" = trusted ] || fail "dd, after: index $(stat_of index)"
[ ! -s "$TMP/ops" ] || fail "dd, after: did $(cat "$TMP/ops")"

# --- An equal target: --checksum reads all of its data, writes nothing.
run --checksum "$src" "$tgt"
[ "$(stat_of index)" = rebuilt ] || fail "equal: index $(stat_of index)"
[ "$(stat_of target_read_bytes)" -ge $((5 * M)) ] ||
	fail "equal: read only $(stat_of target_read_bytes) bytes of the target"
[ ! -s "$TMP/ops" ] || fail "equal: did $(cat "$TMP/ops")"
same "$src" "$tgt"
