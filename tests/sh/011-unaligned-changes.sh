#!/usr/bin/env bash
# Proves: changes at unaligned offsets are found and written as the 4 KiB
# sectors that hold them, not as whole blocks: 3 bytes inside a sector, a
# range crossing a 64 KiB block boundary (its two sectors in one write), and
# the last, partial sector of an image whose size is not a multiple of 4 KiB.
# The operation log lists exactly those sector runs.  With an index from
# before sector records, the target's read-ahead (VMSYNC_DEBUG_HINTS,
# written as the kernel takes it) is exactly the blocks holding them; with
# the records that run left, the same change again reads nothing of the
# target.  The target ends equal, and the next run is trusted, writes
# nothing and reads nothing ahead.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires jq

mnt=$(mkbtrfs 2G)
src=$TMP/disk.img
size=$((64 * 1048576 + 5000))	# last block 5000 bytes, last sector 904
"$HOLES" make "$src" "$size" 0:2M:1 10M:1M:2 64M:5000:3
tgt=$mnt/disk.img
export VMSYNC_DEBUG_OPS=$TMP/ops VMSYNC_DEBUG_HINTS=$TMP/hints

vs -q "$src" "$tgt"
same "$src" "$tgt"

# Overwrite bytes of the source in place (never 0xa5 in a row by chance:
# the data is pseudo-random, and cmp below checks the change took).
poke() {	# poke OFF LEN [OCTAL BYTE]
	head -c "$2" /dev/zero | tr '\0' "\\${3:-245}" |
		dd of="$src" bs=1 seek="$1" conv=notrunc status=none
}
change() {	# change [OCTAL BYTE]
	cp "$src" "$TMP/before.img"
	poke 12345 3 "$@"			# sector 3 (12288..16383)
	poke $((10 * 1048576 + 65536 - 100)) 200 "$@"	# crosses a block boundary
	poke $((64 * 1048576 + 4096 + 500)) 1 "$@"	# last sector, 904 bytes long
	! cmp -s "$src" "$TMP/before.img" || fail "source did not change"
	: > "$TMP/ops"
	: > "$TMP/hints"
	sync_stats "$src" "$tgt"
	same "$src" "$tgt"
	cat > "$TMP/expected" <<EOF
write 12288 4096
write $((b + 61440)) 8192
write $((64 * 1048576 + 4096)) 904
EOF
	diff "$TMP/expected" "$TMP/ops" || fail "operations are not the changed sectors"
}
b=$((10 * 1048576))
"$VMSYNC_HELPERS/idxforge" downgrade "$mnt/.disk.img.vmsync-index"
change
cat > "$TMP/expected" <<EOF
prefetch 0 65536
prefetch $b 131072
prefetch $((64 * 1048576)) 5000
EOF
diff "$TMP/expected" "$TMP/hints" || fail "not the changed blocks read ahead"
[ "$(stat_of written_bytes)" -eq $((3 * 4096 + 904)) ] ||
	fail "written_bytes $(stat_of written_bytes)"
[ "$(stat_of punched_bytes)" -eq 0 ] || fail "punched"
[ "$(stat_of index)" = trusted ] || fail "index not trusted"
[ "$(stat_of target_read_bytes)" -le $((4 * 65536)) ] ||
	fail "read more of the target than the changed blocks"
diff <(data_ranges "$src") <(data_ranges "$tgt") || fail "allocation differs"

# The same sectors changed again: the records know them.
change 132
[ ! -s "$TMP/hints" ] || fail "read ahead with sector records: $(cat "$TMP/hints")"
[ "$(stat_of target_read_bytes)" -eq 0 ] || fail "read the target with sector records"

# Nothing left to do.
: > "$TMP/ops"
: > "$TMP/hints"
sync_stats "$src" "$tgt"
[ ! -s "$TMP/ops" ] || fail "changes written twice: $(cat "$TMP/ops")"
[ ! -s "$TMP/hints" ] || fail "read ahead unchanged blocks: $(cat "$TMP/hints")"
[ "$(stat_of index)" = trusted ] || fail "index not trusted after the change"
[ "$(stat_of written_bytes)" -eq 0 ] || fail "written_bytes not 0"
same "$src" "$tgt"
