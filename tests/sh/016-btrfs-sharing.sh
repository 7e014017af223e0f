#!/usr/bin/env bash
# Proves: an incremental sync keeps a btrfs snapshot of the target sharing
# everything that did not change.  After a read-only snapshot of the target's
# subvolume, 1 MiB of the 32 MiB of data changes in the source; after the
# sync, the live subvolume holds only about that 1 MiB (plus the index's
# copied-on-write pages) exclusively, where a full rewrite (cp, rsync
# without --inplace) would hold all 32 MiB; the snapshot still has the old
# content and the rest stays shared.  Then 3 bytes changed in each of 32
# blocks cost 32 sectors of exclusive space, not 32 blocks.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires jq

mnt=$(mkbtrfs 2G)
src=$TMP/disk.img
M=1048576
"$HOLES" make "$src" 256M 0:16M:1 100M:8M:2 200M:8M:3
btrfs subvolume create "$mnt/vol" > /dev/null
tgt=$mnt/vol/disk.img

vs -q "$src" "$mnt/vol/"
same "$src" "$tgt"
cp "$src" "$TMP/old.img"
btrfs subvolume snapshot -r "$mnt/vol" "$mnt/snap1" > /dev/null

# du_of PATH COLUMN: btrfs filesystem du --raw; 1 total, 2 exclusive, 3 shared
du_of() {
	sync -f "$1"
	btrfs filesystem du -s --raw "$1" | awk -v c="$2" 'NR == 2 {print $c}'
}

# 1 MiB of new random data in the middle of a data range.
"$HOLES" fill "$src" 103M:1M:77
export VMSYNC_DEBUG_OPS=$TMP/ops
sync_stats "$src" "$mnt/vol/"
same "$src" "$tgt"
same "$TMP/old.img" "$mnt/snap1/disk.img"
[ "$(stat_of written_bytes)" -eq "$M" ] || fail "wrote $(stat_of written_bytes), not the 1 MiB changed"

total=$(du_of "$mnt/vol" 1)
excl=$(du_of "$mnt/vol" 2)
shared=$(du_of "$mnt/vol" 3)
btrfs filesystem du -s --raw "$mnt/vol" "$mnt/snap1"
[ "$total" -ge $((32 * M)) ] || fail "btrfs du does not see the data ($total)"
[ "$excl" -ge "$M" ] || fail "exclusive $excl: the change is not in the live target"
[ "$excl" -le $((3 * M / 2)) ] || fail "exclusive $excl bytes for a 1 MiB change"
[ "$shared" -ge $((31 * M)) ] || fail "only $shared bytes still shared with the snapshot"
[ "$(du_of "$mnt/snap1" 2)" -le $((M / 2)) ] || fail "the snapshot lost sharing"

# The file alone: the unchanged 31 MiB are shared.
sync -f "$tgt"
read -r ftotal fexcl fshared < <(btrfs filesystem du --raw "$tgt" | awk 'NR == 2 {print $1, $2, $3}')
[ "$ftotal" -eq $((32 * M)) ] || fail "target file total $ftotal"
[ "$fexcl" -le $((M + 65536)) ] || fail "target file: $fexcl bytes exclusive"
# "Set shared" is not per file in every btrfs-progs version; total - exclusive is.
[ $((ftotal - fexcl)) -ge $((31 * M)) ] || fail "target file shares only $((ftotal - fexcl)) bytes"

# An unchanged run changes nothing of that.
: > "$TMP/ops"
sync_stats "$src" "$mnt/vol/"
[ ! -s "$TMP/ops" ] || fail "unchanged run did: $(cat "$TMP/ops")"
[ "$(du_of "$mnt/vol" 2)" -le $((excl + 65536)) ] || fail "unchanged run grew exclusive data"

# Small scattered changes: 3 bytes in each of 32 blocks.  Only the 32
# sectors that hold them become exclusive, not the 32 blocks (2 MiB).
btrfs subvolume snapshot -r "$mnt/vol" "$mnt/snap2" > /dev/null
for i in $(seq 0 31); do
	printf 'xyz' | dd of="$src" bs=1 seek=$((i * 256 * 1024 + 5000)) \
		conv=notrunc status=none
done
sync_stats "$src" "$mnt/vol/"
same "$src" "$tgt"
[ "$(stat_of written_bytes)" -eq $((32 * 4096)) ] ||
	fail "scattered: wrote $(stat_of written_bytes)"
excl=$(du_of "$mnt/vol" 2)
btrfs filesystem du -s --raw "$mnt/vol" "$mnt/snap2"
[ "$excl" -ge $((32 * 4096)) ] || fail "scattered: exclusive $excl, the change is missing"
[ "$excl" -le $((32 * 4096 + 65536)) ] || fail "scattered: exclusive $excl bytes for 32 sectors"
