#!/usr/bin/env bash
# Proves: a garbage or hostile index is never trusted and never crashes
# vmsync.  After each damage -- random bytes over the whole file, random
# bytes of another size, truncation to nothing, into the header, or into
# the entries, a flipped header byte, a bad magic, and headers with a valid
# checksum but a huge entry count, a huge virtual size, sector records
# over the entries or unaligned, a bad block size,
# unknown flags, a version vmsync does not speak, the dirty flag or another
# inode -- the next run exits 0, refuses the index for the reason the case
# is named after (its -v line), compares with the target and ends with the
# target equal to the source (it had changed meanwhile, data and holes),
# and the run after that trusts the repaired index and does nothing.  The
# header is forged with the index code's own layout and checksum
# (tests/helpers/idxforge): a resealed untouched header, and a version 1
# header, are still trusted.  Damage to the entries alone (the header
# intact) cannot be seen, but must still not make the target differ from
# the source.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires qemu-img jq

IDX="$VMSYNC_HELPERS/idxforge"
mnt=$(mkbtrfs 1G)
src=$TMP/disk.img
"$HOLES" make "$src" 32M 0:2M:1 8M:1M:2 16M:3M:3 31M:1M:4
tgt=$mnt/disk.img
idx=$mnt/.disk.img.vmsync-index
vs -q "$src" "$tgt"
export VMSYNC_DEBUG_OPS=$TMP/ops

# Each case: the source changes (new data, and data replaced by a hole),
# the index is damaged, and the next run must repair everything.
n=0
check() {	# check NAME TRUST [WHY]: the run after the damage
	local name=$1 want=$2 why=${3:-}
	: > "$TMP/ops"
	sync_stats -v "$src" "$tgt" 2> "$TMP/err" ||
		fail "$name: exit $?: $(cat "$TMP/err")"
	! grep -v '^vmsync: \(warning: \)\?[^:]*: \(index not used\|not on btrfs\|read as raw\)\|^vmsync: [^ ]* -> ' \
		"$TMP/err" || fail "$name: unexpected stderr"
	[ -z "$want" ] || [ "$(stat_of index)" = "$want" ] ||
		fail "$name: index $(stat_of index), want $want"
	if [ -n "$why" ]; then
		grep -q "index not used ($why" "$TMP/err" ||
			fail "$name: not refused for '$why': $(cat "$TMP/err")"
	fi
	same "$src" "$tgt"
	diff <(data_ranges "$src") <(data_ranges "$tgt") ||
		fail "$name: allocation differs"
	: > "$TMP/ops"
	sync_stats "$src" "$tgt"
	[ "$(stat_of index)" = trusted ] || fail "$name: repaired index not trusted"
	[ ! -s "$TMP/ops" ] || fail "$name: second run did: $(head -3 "$TMP/ops")"
}
change_source() {
	n=$((n + 1))
	"$HOLES" fill "$src" $((n % 12 * 524288 + 8192)):4K:$((n + 10)) \
		$((20 + n % 10))M:64K:$((n + 40))
	# Punch a 64K hole where the source (and so the target) has data.
	fallocate -p -o $((16 * 1048576 + n % 24 * 131072)) -l 65536 "$src"
}
damage() {	# damage NAME WHY COMMAND...
	local name=$1 why=$2
	shift 2
	change_source
	"$@"
	check "$name" rebuilt "$why"
}

# 4 KiB header, 16 bytes per 64 KiB block, then past room for as many
# again the sector records: an 8-byte check and 16 sector hashes a block.
size=$(stat -c %s "$idx")
soff=$("$IDX" get "$idx" sectors)
[ "$soff" -ge $((4096 + 2 * 512 * 16)) ] && [ $((soff % 4096)) -eq 0 ] ||
	fail "sector records at $soff"
[ "$size" -eq $((soff + 512 * (8 + 16 * 8))) ] || fail "index size $size, sector records at $soff"

# The helper's layout is the one vmsync writes: resealing an untouched
# header keeps it trusted.
"$IDX" seal "$idx"
[ "$("$IDX" why "$idx")" = ok ] || fail "resealed header refused"
check "resealed, untouched" trusted

damage "random bytes" "" \
	sh -c "head -c $size /dev/urandom > '$idx'"
damage "random bytes, 1 MiB" "" \
	sh -c "head -c 1M /dev/urandom > '$idx'"
damage "random bytes, 100" "" \
	sh -c "head -c 100 /dev/urandom > '$idx'"
damage "empty" "" truncate -s 0 "$idx"
damage "truncated in the header" "" truncate -s 100 "$idx"
damage "header only" "" truncate -s 4096 "$idx"
damage "truncated in the entries" "" truncate -s $((4096 + 256 * 16)) "$idx"
damage "one entry short" "" truncate -s $((size - 16)) "$idx"
damage "odd length" "" truncate -s $((size - 5)) "$idx"
damage "bad magic" "not a vmsync index" "$IDX" flip "$idx" magic
damage "flipped version" "unsupported index version" "$IDX" flip "$idx" version
damage "flipped block size" "index header checksum" "$IDX" flip "$idx" block_size+1
damage "flipped virtual size" "index header checksum" "$IDX" flip "$idx" virtual_size+3
damage "flipped dev" "index header checksum" "$IDX" flip "$idx" dev
damage "flipped mtime" "index header checksum" "$IDX" flip "$idx" mtime_sec+6
damage "flipped entry count" "index header checksum" "$IDX" flip "$idx" entries
damage "flipped medium" "index header checksum" "$IDX" flip "$idx" medium
damage "flipped view" "index header checksum" "$IDX" flip "$idx" view+15
damage "flipped sector offset" "index header checksum" "$IDX" flip "$idx" sectors+1
damage "flipped checksum" "index header checksum" "$IDX" flip "$idx" csum+1
damage "zeroed header" "" dd if=/dev/zero of="$idx" bs=4096 count=1 conv=notrunc status=none

# Forged headers: the checksum matches, the content is absurd.  Each must
# reach the check it is named after: the decoder's own verdict, and then
# vmsync's -v line, say why.
forge() {	# forge NAME WHY FIELD=VALUE...
	local name=$1 why=$2
	shift 2
	change_source
	"$IDX" set "$idx" "$@"
	case "$("$IDX" why "$idx")" in
	ok) ;;
	"$why"*) ;;
	*) fail "forged: $name: decoder says '$("$IDX" why "$idx")', not '$why'" ;;
	esac
	check "forged: $name" rebuilt "$why"
}
forge "huge entry count" "index entry count" entries=9223372036854775807
forge "entry count 2^64-1" "index entry count" entries=18446744073709551615
forge "entry count off by one" "index entry count" entries=513
forge "zero entry count" "index entry count" entries=0
# Huge virtual size with the entry count it implies: the sector records
# would overlap the entries; without records, shorter than it says.
forge "huge virtual size" "bad sector record offset" \
	virtual_size=4611686018427387904 entries=70368744177664
forge "virtual size 2^64-1" "bad sector record offset" \
	virtual_size=18446744073709551615 entries=281474976710656
forge "huge virtual size, no records" "index is shorter than its header says" \
	virtual_size=4611686018427387904 entries=70368744177664 sectors=0
forge "sector records over the entries" "bad sector record offset" sectors=4096
forge "sector records unaligned" "bad sector record offset" sectors=1048577
forge "block size 0" "bad block size" block_size=0
forge "block size 3000" "bad block size" block_size=3000
forge "block size 8M" "bad block size" block_size=8388608 entries=4
forge "block size 2G" "bad block size" block_size=2147483648 entries=1
forge "unknown flag" "unknown flags" flags=2
forge "next version" "unsupported index version" \
	version=$(($("$IDX" version) + 1))
forge "version 0" "unsupported index version" version=0
forge "header size 0" "bad index header size" header_size=0
forge "header size 8K" "bad index header size" header_size=8192
forge "dirty flag" "an earlier run did not finish" flags=1
# A header saying "clean and identical", but about another inode.
forge "other inode" "the target changed since the last run" ino=1

# A version 1 header (no view id, checksum where the view is now) is still
# read; about an unchanged target, it is trusted.
"$IDX" set "$idx" version=1
[ "$("$IDX" why "$idx")" = ok ] || fail "version 1 header refused"
check "version 1" trusted

# Entries damaged behind an intact header cannot be detected; the target
# must still end equal (a stale hash only makes vmsync compare).
change_source
dd if=/dev/urandom of="$idx" bs=16 seek=256 count=512 conv=notrunc status=none
check "random entries" ""
change_source
dd if=/dev/urandom of="$idx" bs=16 seek=256 count=10 conv=notrunc status=none
check "a few random entries" ""
echo "$n damaged indexes repaired"
