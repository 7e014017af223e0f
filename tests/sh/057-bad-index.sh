#!/usr/bin/env bash
# Proves: a garbage or hostile index is never trusted and never crashes
# vmsync.  After each damage -- random bytes over the whole file, random
# bytes of another size, truncation to nothing, into the header, or into
# the entries, a flipped header byte, a bad magic, and headers with a valid
# checksum but a huge entry count, a huge virtual size, a bad block size,
# unknown flags or another version -- the next run exits 0, reports the
# index "rebuilt", compares with the target and ends with the target equal
# to the source (it had changed meanwhile, data and holes), and the run
# after that trusts the repaired index and does nothing.  Damage to the
# entries alone (the header intact) cannot be seen, but must still not
# make the target differ from the source.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires qemu-img jq cc perl

# A checksum that matches a forged header: XXH3-64 of its first 104 bytes.
cat > "$TMP/xxh3.c" <<'EOF'
#include <stdio.h>
#include <xxhash.h>
int main(void)
{
	unsigned char b[104];
	unsigned long long h;

	if (fread(b, 1, sizeof(b), stdin) != sizeof(b))
		return 1;
	h = XXH3_64bits(b, sizeof(b));
	for (int i = 0; i < 8; i++)
		putchar((int)(h >> (8 * i) & 0xff));
	return 0;
}
EOF
cc -o "$TMP/xxh3" "$TMP/xxh3.c" -lxxhash 2> "$TMP/cc.err" ||
	skip "cannot build against libxxhash: $(head -1 "$TMP/cc.err")"

mnt=$(mkbtrfs 1G)
src=$TMP/disk.img
"$HOLES" make "$src" 32M 0:2M:1 8M:1M:2 16M:3M:3 31M:1M:4
tgt=$mnt/disk.img
idx=$mnt/.disk.img.vmsync-index
vs -q "$src" "$tgt"
export VMSYNC_DEBUG_OPS=$TMP/ops

put64() {	# put64 FILE OFFSET VALUE: little-endian, in place
	perl -e 'print pack("Q<", $ARGV[0])' "$3" |
		dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
put32() {
	perl -e 'print pack("L<", $ARGV[0])' "$3" |
		dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
reseal() {	# make the header checksum match again
	head -c 104 "$1" | "$TMP/xxh3" > "$TMP/csum"
	dd if="$TMP/csum" of="$1" bs=1 seek=104 conv=notrunc status=none
}
flip() {	# flip one byte at OFFSET
	local b
	b=$(od -An -tu1 -j "$2" -N1 "$1")
	perl -e 'print chr($ARGV[0] ^ 0x5a)' "$b" |
		dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# Each case: the source changes (new data, and data replaced by a hole),
# the index is damaged, and the next run must repair everything.
n=0
check() {	# check NAME TRUST: the run after the damage
	local name=$1 want=$2
	: > "$TMP/ops"
	sync_stats "$src" "$tgt" 2> "$TMP/err" ||
		fail "$name: exit $?: $(cat "$TMP/err")"
	[ ! -s "$TMP/err" ] || fail "$name: stderr: $(cat "$TMP/err")"
	[ -z "$want" ] || [ "$(stat_of index)" = "$want" ] ||
		fail "$name: index $(stat_of index), want $want"
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
damage() {	# damage NAME COMMAND...
	local name=$1
	shift
	change_source
	"$@"
	check "$name" rebuilt
}

size=$(stat -c %s "$idx")
[ "$size" -eq $((4096 + 512 * 16)) ] || fail "index size $size, not 4 KiB + 16 per 64 KiB block"

damage "random bytes" \
	sh -c "head -c $size /dev/urandom > '$idx'"
damage "random bytes, 1 MiB" \
	sh -c "head -c 1M /dev/urandom > '$idx'"
damage "random bytes, 100" \
	sh -c "head -c 100 /dev/urandom > '$idx'"
damage "empty" truncate -s 0 "$idx"
damage "truncated in the header" truncate -s 100 "$idx"
damage "header only" truncate -s 4096 "$idx"
damage "truncated in the entries" truncate -s $((4096 + 256 * 16)) "$idx"
damage "one entry short" truncate -s $((size - 16)) "$idx"
damage "odd length" truncate -s $((size - 5)) "$idx"
damage "bad magic" flip "$idx" 0
damage "flipped version" flip "$idx" 8
damage "flipped block size" flip "$idx" 17
damage "flipped virtual size" flip "$idx" 27
damage "flipped dev" flip "$idx" 40
damage "flipped mtime" flip "$idx" 70
damage "flipped entry count" flip "$idx" 96
damage "flipped checksum" flip "$idx" 105
damage "zeroed header" dd if=/dev/zero of="$idx" bs=4096 count=1 conv=notrunc status=none

# Forged headers: the checksum matches, the content is absurd.
forge() {	# forge NAME FIELD-WRITES...: each "put64|put32 OFF VALUE"
	local name=$1 w
	shift
	change_source
	for w in "$@"; do
		# shellcheck disable=SC2086
		set -- $w
		"$1" "$idx" "$2" "$3"
	done
	reseal "$idx"
	check "forged: $name" rebuilt
}
forge "huge entry count" "put64 96 9223372036854775807"
forge "entry count 2^64-1" "put64 96 18446744073709551615"
forge "entry count off by one" "put64 96 513"
forge "zero entry count" "put64 96 0"
# Huge virtual size with the entry count it implies: shorter than it says.
forge "huge virtual size" "put64 24 4611686018427387904" "put64 96 70368744177664"
forge "virtual size 2^64-1" "put64 24 18446744073709551615" \
	"put64 96 281474976710656"
forge "block size 0" "put32 16 0"
forge "block size 3000" "put32 16 3000"
forge "block size 8M" "put32 16 8388608" "put64 96 4"
forge "block size 2G" "put32 16 2147483648" "put64 96 1"
forge "unknown flag" "put32 20 2"
forge "version 2" "put32 8 2"
forge "header size 0" "put32 12 0"
forge "dirty flag" "put32 20 1"
# A forged header saying "clean and identical", but about another inode.
forge "other inode" "put64 48 1"

# Entries damaged behind an intact header cannot be detected; the target
# must still end equal (a stale hash only makes vmsync compare).
change_source
dd if=/dev/urandom of="$idx" bs=16 seek=256 count=512 conv=notrunc status=none
check "random entries" ""
change_source
dd if=/dev/urandom of="$idx" bs=16 seek=256 count=10 conv=notrunc status=none
check "a few random entries" ""
echo "$n damaged indexes repaired"
