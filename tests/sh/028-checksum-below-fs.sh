#!/usr/bin/env bash
# Proves: --checksum repairs damage the index cannot see.  The damage is
# made below the filesystem (bytes of a no-checksum btrfs file changed in
# the loop image), so the target's identity (inode, size, mtime, ctime) is
# untouched and a plain run trusts the index; --checksum then finds and
# rewrites exactly the damaged sector, and the run after it is trusted and
# does nothing.  (Damage made through the filesystem: 018-checksum.sh.)
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires jq chattr filefrag btrfs-map-logical findmnt

mnt=$(mkbtrfs 1G)
src=$TMP/disk.img
M=1048576
"$HOLES" make "$src" 64M 0:4M:1 30M:1M:2
export VMSYNC_DEBUG_OPS=$TMP/ops

run() {	# run ARGS...: sync_stats with an empty operation log
	: > "$TMP/ops"
	sync_stats "$@"
}

# --- Damage below the filesystem.  No CoW, hence no data checksums that
# would turn the damage into read errors.
mkdir "$mnt/nocow"
chattr +C "$mnt/nocow"
tgt=$mnt/nocow/disk.img
vs -q "$src" "$tgt"
same "$src" "$tgt"
sync -f "$mnt"
# The btrfs logical address of the target's byte at 1 MiB + 100, then its
# place in the loop image.
blk=$((M / 4096))
logical=$(filefrag -v "$tgt" | awk -v b=$blk '
	$1 ~ /^[0-9]+:$/ {
		s = $2; sub(/\.\./, "", s); e = $3; sub(/:/, "", e)
		p = $4; sub(/\.\./, "", p)
		if (s + 0 <= b && b <= e + 0) { print (p + b - s) * 4096; exit }
	}')
[ -n "$logical" ] || fail "no extent at 1 MiB in the target"
dev=$(findmnt -no SOURCE "$mnt")
image=$(losetup -nO BACK-FILE "$dev" | sed 's/ *$//')
physical=$(btrfs-map-logical -l "$logical" "$dev" 2>/dev/null |
	awk '/^mirror 1 /{print $6; exit}')
[ -n "$physical" ] || fail "btrfs-map-logical found no mirror for $logical"
stat -c '%d %i %s %y %z' "$tgt" > "$TMP/id.before"
printf 'DAMAGED' | dd of="$image" bs=1 seek=$((physical + 100)) conv=notrunc status=none
sync "$image"
dd if="$tgt" iflag=nocache count=0 status=none	# drop its cached pages
cmp -s "$src" "$tgt" && skip "could not damage the target below the filesystem"
{ cmp "$src" "$tgt" || :; } | grep -q "byte $((M + 101))," || fail "damage landed elsewhere"
stat -c '%d %i %s %y %z' "$tgt" | diff "$TMP/id.before" - ||
	fail "damage below the filesystem changed the identity"

# The identity matches: a plain run trusts the index (it cannot know).
run "$src" "$tgt"
[ "$(stat_of index)" = trusted ] || fail "plain run: index $(stat_of index)"
# --checksum finds the damaged sector and rewrites only it.
run --checksum "$src" "$tgt"
same "$src" "$tgt"
[ "$(stat_of index)" = rebuilt ] || fail "--checksum: index $(stat_of index)"
[ "$(stat_of target_read_bytes)" -gt 0 ] || fail "--checksum: target not read"
[ "$(stat_of written_bytes)" -eq 4096 ] || fail "--checksum: wrote $(stat_of written_bytes)"
echo "write $M 4096" | diff - "$TMP/ops" || fail "--checksum: wrong operations"
run "$src" "$tgt"
[ "$(stat_of index)" = trusted ] || fail "after --checksum: index $(stat_of index)"
[ ! -s "$TMP/ops" ] || fail "after --checksum: did $(cat "$TMP/ops")"
