#!/usr/bin/env bash
# Proves: a target whose size is not a whole number of filesystem blocks
# keeps no data where the source has a hole, its last partial block
# included, on ext4 and on btrfs, and --verify then passes.
#  - A 4095-byte image whose guest discarded everything, and a 65537-byte
#    one that keeps only its first 4 KiB: synced locally, pushed to a
#    server, imported from an archive, and applied as an incremental
#    archive onto an earlier copy.  Each time the target's data ranges
#    are the source's and the size is kept.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires_ext4
requires tar zstd

# tail_ok REF TGT: TGT equals REF, with data only where REF has it, and
# its index trusted by --verify.
tail_ok() {
	same "$1" "$2"
	[ "$(stat -c %s "$2")" -eq "$(stat -c %s "$1")" ] || fail "$2: size"
	sync "$2"
	diff <(data_ranges "$1") <(data_ranges "$2") >&2 ||
		fail "$2: allocated where the source has a hole"
	vs --verify "$2" > /dev/null || fail "$2: verify exit $?"
}

# discard VS DIR PREFIX: $name's "d" version synced by VS (vs or rvs)
# into DIR/ (named PREFIX DIR/), then its "h" version over it.
discard() {
	local d=$2
	mkdir -p "$d"
	cp "$TMP/d/$name.img" "$TMP/$name.img"
	$1 -q "$TMP/$name.img" "$3$d/" || fail "$fs: first $1 into $d"
	cp --sparse=always "$TMP/h/$name.img" "$TMP/$name.img"
	$1 -q "$TMP/$name.img" "$3$d/" || fail "$fs: $1 into $d: exit $?"
	tail_ok "$TMP/h/$name.img" "$d/$name.img"
}

# Two versions of each size: "d" (data) before, "h" (holes) after.
mkdir "$TMP/d" "$TMP/h"
"$HOLES" make "$TMP/d/small.img" 4095 0:4095:1
"$HOLES" make "$TMP/h/small.img" 4095
"$HOLES" make "$TMP/d/big.img" 65537 0:65537:2
"$HOLES" make "$TMP/h/big.img" 65537 0:4K:2
[ "$(data_ranges "$TMP/h/small.img" | tail -1)" = "total 0" ] ||
	fail "the source has data"

ext4=$(mkext4 256M)
btrfs=$(mkbtrfs 1G)
for mnt in "$ext4" "$btrfs"; do
	fs=$(stat -f -c %T "$mnt")
	for name in small big; do
		# A local sync, then the guest's discard; the same pushed.
		discard vs "$mnt/local" ""
		discard rvs "$mnt/remote" host:

		# An archive of the discarded image, imported over the old one.
		d=$mnt/import
		mkdir -p "$d"
		vs -q "$TMP/d/$name.img" "$d/" || fail "$fs: sync for import"
		rm -f "$TMP/$name.tar"
		vs -q "$TMP/h/$name.img" "$TMP/$name.tar" || fail "export"
		vs -q "$TMP/$name.tar" "$d/" || fail "$fs: import exit $?"
		tail_ok "$TMP/h/$name.img" "$d/$name.img"

		# An incremental archive from the old to the new, applied.
		rm -rf "$TMP/g1" "$TMP/g2" "$TMP/inc.tar.zst"
		vs -q "$TMP/d/$name.img" "$TMP/g1/" || fail "sync g1"
		vs -q "$TMP/h/$name.img" "$TMP/g2/" || fail "sync g2"
		vs -q --since "$TMP/g1/$name.img" "$TMP/g2/$name.img" \
			"$TMP/inc.tar.zst" || fail "incremental export"
		d=$mnt/apply
		mkdir -p "$d"
		vs -q "$TMP/d/$name.img" "$d/" || fail "$fs: sync for apply"
		vs -q "$TMP/inc.tar.zst" "$d/" || fail "$fs: apply exit $?"
		tail_ok "$TMP/h/$name.img" "$d/$name.img"
	done
done
exit 0
