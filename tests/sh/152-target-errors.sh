#!/usr/bin/env bash
# Proves: target problems exit 3 with a one-line error naming the target,
# and nothing is written where it must not be:
#  - a target on a read-only filesystem (the existing backup is unchanged);
#  - a target path that is a symbolic link (refused; its destination intact);
#  - an index path that is a symbolic link planted beside the target;
#  - a block device target smaller than the source (refused before writing).
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires qemu-img

mnt=$(mkbtrfs 1G)
src=$TMP/disk.img
"$HOLES" make "$src" 64M 0:1M:1 32M:1M:2
vs -q "$src" "$mnt/"
"$HOLES" fill "$src" 0:4K:3
sum=$(md5sum < "$mnt/disk.img")
mount -o remount,ro "$mnt"
must_fail 3 "$mnt/disk.img: cannot open target: Read-only file system" vs "$src" "$mnt/"
must_fail 3 "$mnt/new.img: cannot open target: Read-only file system" vs "$src" "$mnt/new.img"
[ "$(md5sum < "$mnt/disk.img")" = "$sum" ] || fail "backup on a read-only fs changed"
mount -o remount,rw "$mnt"

# Symbolic link as target.
"$HOLES" make "$TMP/precious" 64M 0:64M:9
sum=$(md5sum < "$TMP/precious")
ln -s "$TMP/precious" "$mnt/link.img"
must_fail 3 "$mnt/link.img: target is a symbolic link; refusing to write through it" \
	vs "$src" "$mnt/link.img"
mkdir "$mnt/d" && ln -s "$TMP/precious" "$mnt/d/disk.img"
must_fail 3 "$mnt/d/disk.img: target is a symbolic link" vs "$src" "$mnt/d/"
[ "$(md5sum < "$TMP/precious")" = "$sum" ] || fail "symlink destination changed"

# Symbolic link as index.
mkdir "$mnt/e"
ln -s "$TMP/precious" "$mnt/e/.disk.img.vmsync-index"
must_fail 3 "$mnt/e/.disk.img.vmsync-index: index is a symbolic link; refusing it" \
	vs "$src" "$mnt/e/"
[ "$(md5sum < "$TMP/precious")" = "$sum" ] || fail "index symlink destination changed"

# Device smaller than the source.
truncate -s 32M "$TMP/small.img"
"$HOLES" fill "$TMP/small.img" 0:32M:5
sum=$(md5sum < "$TMP/small.img")
dev=$(mkloopdev "$TMP/small.img")
must_fail 3 "$dev: target device is smaller than the source \\(33554432 < 67108864 bytes\\); nothing written" \
	vs "$src" "$dev"
[ "$(md5sum < "$TMP/small.img")" = "$sum" ] || fail "small device written"
