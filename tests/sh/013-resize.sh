#!/usr/bin/env bash
# Proves: the target follows a source that grows and shrinks, to sizes that
# are not multiples of the block size nor of 4 KiB, with and without data in
# the new part: size and content equal, allocation equal, only the new data
# written, and the index stays usable (the run after each change is trusted
# and writes nothing).  Also a source cut short and grown back between two
# runs: the bytes past the cut read as zeros and become holes on the target.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires jq

mnt=$(mkbtrfs 2G)
src=$TMP/disk.img
M=1048576
"$HOLES" make "$src" 64M 0:4M:1 40M:4M:2 60M:4M:3
tgt=$mnt/disk.img
export VMSYNC_DEBUG_OPS=$TMP/ops

vs -q "$src" "$tgt"
same "$src" "$tgt"

check() {	# check WHAT: target equal, then a run that does nothing
	same "$src" "$tgt"
	[ "$(stat -c %s "$tgt")" -eq "$(stat -c %s "$src")" ] || fail "$1: size"
	diff <(data_ranges "$src") <(data_ranges "$tgt") ||
		fail "$1: allocation differs"
	[ "$(stat_of index)" = trusted ] || fail "$1: index not trusted"
	: > "$TMP/ops"
	sync_stats "$src" "$tgt"
	[ ! -s "$TMP/ops" ] || fail "$1: next run did: $(cat "$TMP/ops")"
	[ "$(stat_of index)" = trusted ] || fail "$1: index unusable after"
	[ "$(stat_of written_bytes)" -eq 0 ] || fail "$1: next run wrote"
	same "$src" "$tgt"
}

# Grow to 96 MiB + 5000 bytes, with data in the new part and in its last,
# partial block.
truncate -s $((96 * M + 5000)) "$src"
"$HOLES" fill "$src" 80M:1M:4 $((96 * M)):5000:5
: > "$TMP/ops"
sync_stats "$src" "$tgt"
[ "$(stat_of written_bytes)" -eq $((M + 5000)) ] ||
	fail "grow: wrote $(stat_of written_bytes), not the new data"
! grep -q punch "$TMP/ops" || fail "grow: punched"
check "grow to 96M+5000"

# Shrink into the middle of a data range, 1234 bytes into a block.
truncate -s $((42 * M + 1234)) "$src"
: > "$TMP/ops"
sync_stats "$src" "$tgt"
[ "$(stat_of written_bytes)" -eq 0 ] || fail "shrink: wrote"
check "shrink to 42M+1234"

# Shrink to a multiple of 4 KiB that is not one of 64 KiB.
truncate -s $((3 * M + 12288)) "$src"
sync_stats "$src" "$tgt"
check "shrink to 3M+12K"

# Cut short and grown back before the next run: the target keeps its size,
# the cut-off bytes are zeros now and must become holes.
truncate -s $((M + 100)) "$src"
truncate -s $((3 * M + 12288)) "$src"
: > "$TMP/ops"
sync_stats "$src" "$tgt"
# The sector holding the cut is written, the rest of its block and the
# blocks after it are punched.
cat > "$TMP/expected" <<EOF
write $M 4096
punch $((M + 4096)) 61440
punch $((M + 65536)) $((2 * M + 12288 - 65536))
EOF
diff "$TMP/expected" "$TMP/ops" || fail "cut and regrow: wrong operations"
check "cut to 1M+100, grown to 3M+12K"

# Grow far, with data that ends exactly at the new, unaligned end.
truncate -s $((200 * M + 100)) "$src"
"$HOLES" fill "$src" $((199 * M)):$((M + 100)):6
: > "$TMP/ops"
sync_stats "$src" "$tgt"
[ "$(stat_of written_bytes)" -eq $((M + 100)) ] || fail "grow 2: wrote $(stat_of written_bytes)"
check "grow to 200M+100"

# Grow inside the last sector, with data in the new bytes.
truncate -s $((200 * M + 3000)) "$src"
"$HOLES" fill "$src" $((200 * M + 100)):2900:7
: > "$TMP/ops"
sync_stats "$src" "$tgt"
echo "write $((200 * M)) 3000" | diff - "$TMP/ops" || fail "grow 3: wrong operations"
check "grow to 200M+3000"

# And back to the first size.
truncate -s 64M "$src"
sync_stats "$src" "$tgt"
check "shrink to 64M"
