#!/usr/bin/env bash
# Proves: a damaged or hostile index is never trusted and never crashes
# vmsync: random bytes, a truncated file, a flipped header byte, an entry
# count far beyond the file, wrong entries under a valid header (caught by
# the identity check), an empty file, a header claiming 2^44 entries; each time the target ends equal.
. "$VMSYNC_TOP/tests/functions.sh"
requires qemu-img jq python3

src=$TMP/disk.img
tgt=$TMP/backup.img
idx=$TMP/.backup.img.vmsync-index
"$HOLES" make "$src" 64M 0:2M:1 40M:2M:2
vs -q "$src" "$tgt"

damage() {
	case $1 in
	random) head -c 8192 /dev/urandom > "$idx" ;;
	truncated) truncate -s 2000 "$idx" ;;
	short-entries) truncate -s 5000 "$idx" ;;
	empty) : > "$idx" ;;
	flipped) printf '\x01' | dd of="$idx" bs=1 seek=30 conv=notrunc status=none ;;
	huge-count)
		# A huge size and entry count (the header checksum no longer
		# matches; the length check is covered by the unit tests).
		python3 - "$idx" <<'PY'
import struct, sys
p = sys.argv[1]
with open(p, 'r+b') as f:
    b = bytearray(f.read(4096))
    struct.pack_into('<Q', b, 24, 1 << 60)
    struct.pack_into('<Q', b, 96, (1 << 60) // 65536)
    f.seek(0)
    f.write(b)
PY
		;;
	esac
}

for kind in random truncated short-entries empty flipped huge-count; do
	vs -q "$src" "$tgt"
	"$HOLES" fill "$src" 40M:4K:$RANDOM
	damage $kind
	rc=0
	sync_stats "$src" "$tgt" 2> "$TMP/err" || rc=$?
	[ "$rc" -eq 0 ] || fail "$kind: exit $rc: $(cat "$TMP/err")"
	[ "$(stat_of index)" = rebuilt ] || fail "$kind: damaged index trusted"
	same "$src" "$tgt"
	sync_stats "$src" "$tgt"
	[ "$(stat_of index)" = trusted ] || fail "$kind: index not rebuilt"
done

# Wrong entries under a valid header: the target's identity no longer
# matches once anything else wrote to it, so a planted old index is not
# trusted.
cp "$idx" "$TMP/old-index"
"$HOLES" fill "$src" 0:64K:77
vs -q "$src" "$tgt"
cp "$TMP/old-index" "$idx"
"$HOLES" fill "$src" 0:64K:78
sync_stats "$src" "$tgt"
[ "$(stat_of index)" = rebuilt ] || fail "stale index from an earlier run trusted"
same "$src" "$tgt"
