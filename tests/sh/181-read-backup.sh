#!/usr/bin/env bash
# Proves: reading a backup never writes into the backup.  A source that
# is a vmsync target (its index beside it) is read as it is, with no
# .vmsync clone in its subvolume, locally and by a pull; the restore
# equals the source.  While a run writes the backup (its lock held), a
# restore from it is refused with exit 6, before anything is created.  A
# backup that a VM runs on again (restored in place, qemu holds it) is a
# live disk: it is cloned as any source on btrfs.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires qemu-io

mnt=$(mkbtrfs 1G)
btrfs subvolume create "$mnt/backup" > /dev/null
btrfs subvolume create "$mnt/restore" > /dev/null
src=$TMP/disk.img
"$HOLES" make "$src" 64M 0:8M:1 30M:4M:2
vs -q "$src" "$mnt/backup/"
bk=$mnt/backup/disk.img

vs -q "$bk" "$mnt/restore/"
same "$src" "$mnt/restore/disk.img"
[ ! -e "$mnt/backup/.vmsync" ] || fail "a restore left $(ls -A "$mnt/backup/.vmsync") in the backup"
rm "$mnt/restore/disk.img" "$mnt/restore/.disk.img.vmsync-index"
rvs -q "host:$bk" "$mnt/restore/"
same "$src" "$mnt/restore/disk.img"
[ ! -e "$mnt/backup/.vmsync" ] || fail "a pull left $(ls -A "$mnt/backup/.vmsync") in the backup"

hold_lock "$bk"
must_fail 6 "another vmsync run is writing" "$VMSYNC" "$bk" "$mnt/restore/other.img"
[ ! -e "$mnt/restore/other.img" ] || fail "a refused restore created its target"
kill "$holder"
wait "$holder" 2> /dev/null || :

# In place, booted again: a live disk, read through a clone.
qemu_hold "$bk"
vs -q "$bk" "$mnt/restore/live.img" 2> /dev/null
qemu_release
[ -d "$mnt/backup/.vmsync" ] || fail "a disk a VM runs on was read live, not cloned"
same "$src" "$mnt/restore/live.img"
echo "backups read in place, nothing written into them"
