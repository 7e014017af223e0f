#!/usr/bin/env bash
# Proves: the restores the manual's RESTORE section describes work as it
# says.
#  - In place over the existing image, from the live backup: one changed
#    4 KiB sector is all that is written, the hole the image had stays a
#    hole, and the image equals the backup again.
#  - By pull, in place over an image without an index: only the blocks
#    that differ cross the wire (under 1 MiB received for a 64 MiB image
#    holding 24 MiB), and only the changed sector is written.
#  - An image a running qemu holds is refused (exit 3), with --force
#    restored.
#  - Single files: the guest disk of a qcow2 backup synced out with
#    -O raw and mounted read-only through a loop device gives back a file
#    of the guest's ext4.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires jq qemu-img qemu-io mkfs.ext4 losetup

mnt=$(mkbtrfs 1G)
mkdir "$mnt/backup" "$mnt/images"
img=$mnt/images/web.img
"$HOLES" make "$img" 64M 0:16M:1 32M:8M:2
vs -q "$img" "$mnt/backup/"
bk=$mnt/backup/web.img

# In place, from the live backup.
dd if=/dev/urandom of="$img" bs=4K seek=1000 count=1 conv=notrunc status=none
sync_stats "$bk" "$mnt/images/"
[ "$(stat_of written_bytes)" -eq 4096 ] || fail "in place: wrote $(stat_of written_bytes) bytes"
same "$bk" "$img"
diff <(data_ranges "$bk") <(data_ranges "$img") || fail "in place: allocation differs"

# By pull, in place, the image's index gone.
rm "$mnt/images/.web.img.vmsync-index"
dd if=/dev/urandom of="$img" bs=4K seek=3000 count=1 conv=notrunc status=none
STATS=$(rvs --json --no-progress "host:$bk" "$mnt/images/")
[ "$(stat_of wire_received_bytes)" -lt $((1 << 20)) ] ||
	fail "pull in place: received $(stat_of wire_received_bytes) bytes"
[ "$(stat_of written_bytes)" -eq 4096 ] || fail "pull in place: wrote $(stat_of written_bytes) bytes"
same "$bk" "$img"

# A running VM's image.
dd if=/dev/urandom of="$img" bs=4K seek=5 count=1 conv=notrunc status=none
qemu_hold "$img"
must_fail 3 "in use by a VM" "$VMSYNC" "$bk" "$mnt/images/"
vs -q --force "$bk" "$mnt/images/"
qemu_release
same "$bk" "$img"

# Single files, through -O raw and a loop mount.
guest=$TMP/guest.raw
truncate -s 64M "$guest"
mkfs.ext4 -q -F "$guest"
mkdir "$TMP/g"
mount -o loop "$guest" "$TMP/g"
head -c 300000 /dev/urandom > "$TMP/g/report.pdf"
cp "$TMP/g/report.pdf" "$TMP/report.pdf"
umount "$TMP/g"
qemu-img convert -O qcow2 "$guest" "$mnt/images/db.qcow2"
vs -q "$mnt/images/db.qcow2" "$mnt/backup/"
vs -q -O raw "$mnt/backup/db.qcow2" "$TMP/"
loop=$(losetup --find --show --read-only "$TMP/db.raw")
cleanup_fn "losetup -d $loop"
mount -o ro "$loop" "$TMP/g"
cleanup_fn "umount '$TMP/g'"
cmp "$TMP/report.pdf" "$TMP/g/report.pdf" || fail "the file restored differs"
echo "restores as documented"
