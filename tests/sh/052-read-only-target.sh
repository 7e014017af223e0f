#!/usr/bin/env bash
# Proves: a target that cannot be written exits 3 with a one-line error
# naming the target, and changes nothing:
#  - on a read-only filesystem, an existing backup (synced before the
#    remount) and its index are unchanged, and no new target is created;
#    a dry run still works there; once the filesystem is writable again the
#    next run trusts the index (the failed runs did not mark it dirty);
#  - a DEST directory that does not exist;
#  - a directory the user may not write (run as nobody).
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires qemu-img jq setpriv

mnt=$(mkbtrfs 1G)
src=$TMP/disk.img
"$HOLES" make "$src" 256M 0:1M:1 100M:2M:2 255M:1M:3
mkdir "$mnt/backup"
tgt=$mnt/backup/disk.img
idx=$mnt/backup/.disk.img.vmsync-index
vs -q "$src" "$mnt/backup/"
same "$src" "$tgt"
cp --sparse=always "$tgt" "$TMP/backup.copy"
isum=$(md5sum < "$idx")
stamp=$(stat -c '%Y.%y %Z.%z' "$tgt")

# The source changes, then the backup's filesystem goes read-only.
"$HOLES" fill "$src" 0:4K:7 50M:64K:8
mount -o remount,ro "$mnt"
cleanup_fn "mount -o remount,rw '$mnt' 2>/dev/null"
must_fail 3 "^vmsync: $tgt: .*Read-only file system$" vs "$src" "$mnt/backup/"
must_fail 3 "^vmsync: $tgt: .*Read-only file system$" vs "$src" "$tgt"
must_fail 3 "^vmsync: $tgt: .*Read-only file system$" vs -c "$src" "$tgt"
must_fail 3 "^vmsync: $mnt/backup/new.img: .*Read-only file system$" \
	vs "$src" "$mnt/backup/new.img"
must_fail 3 "^vmsync: $mnt/backup/idx.img: .*Read-only file system$" \
	vs --index="$TMP/idx" "$src" "$mnt/backup/idx.img"
[ ! -e "$TMP/idx" ] || fail "an index was created for a target that cannot be"
# Two sources, both onto the read-only filesystem: every image failed.
cp --sparse=always "$src" "$TMP/second.img"
rc=0
vs "$src" "$TMP/second.img" "$mnt/backup/" 2> "$TMP/err" || rc=$?
[ "$rc" -eq 3 ] || fail "two targets on a read-only fs: exit $rc, want 3"
grep -q "$mnt/backup/second.img: .*Read-only" "$TMP/err" || fail "no error for second.img"
[ "$(wc -l < "$TMP/err")" -eq 2 ] || fail "want one line per image: $(cat "$TMP/err")"

# A dry run only reads: it works and reports what a real run would do.
sync_stats -n "$src" "$mnt/backup/"
[ "$(stat_of status)" -eq 0 ] || fail "dry run on a read-only fs failed"
[ "$(stat_of index)" = trusted ] || fail "dry run did not trust the index"
[ "$(stat_of written_bytes)" -eq $((4096 + 65536)) ] ||
	fail "dry run would write $(stat_of written_bytes) bytes"

mount -o remount,rw "$mnt"
cmp "$TMP/backup.copy" "$tgt" || fail "read-only target changed"
[ "$(md5sum < "$idx")" = "$isum" ] || fail "index changed"
[ "$(stat -c '%Y.%y %Z.%z' "$tgt")" = "$stamp" ] || fail "target times changed"
[ "$(ls -A "$mnt/backup" | sort | tr '\n' ' ')" = ".disk.img.vmsync-index disk.img " ] ||
	fail "files created on the read-only fs: $(ls -A "$mnt/backup")"
sync_stats "$src" "$mnt/backup/"
[ "$(stat_of index)" = trusted ] || fail "index not trusted after the failed runs"
[ "$(stat_of written_bytes)" -eq $((4096 + 65536)) ] ||
	fail "wrote $(stat_of written_bytes) bytes, want the two changed ranges"
same "$src" "$tgt"

# A DEST directory whose parent does not exist (a missing last component
# alone is made, as rsync does), and a DEST file in a missing directory.
must_fail 3 "^vmsync: $mnt/nodir/deeper/: " vs "$src" "$mnt/nodir/deeper/"
must_fail 3 "^vmsync: $mnt/nodir/disk.img: .*No such file or directory$" \
	vs "$src" "$mnt/nodir/disk.img"
[ ! -e "$mnt/nodir" ] || fail "created the missing directory"

# A directory, and a target file, that nobody cannot write.
chmod 711 "$TMP"
chmod 644 "$src"
mkdir "$mnt/locked"
chmod 755 "$mnt/locked" "$mnt"
cp --sparse=always "$TMP/backup.copy" "$mnt/locked/old.img"
chmod 644 "$mnt/locked/old.img"
as_nobody() {
	setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"
}
as_nobody test -r "$src" || skip "nobody cannot read $src"
must_fail 3 "^vmsync: $mnt/locked/disk.img: .*Permission denied$" \
	as_nobody "$VMSYNC" "$src" "$mnt/locked/"
must_fail 3 "^vmsync: $mnt/locked/old.img: .*Permission denied$" \
	as_nobody "$VMSYNC" "$src" "$mnt/locked/old.img"
cmp "$TMP/backup.copy" "$mnt/locked/old.img" || fail "unwritable target changed"
[ "$(ls -A "$mnt/locked")" = old.img ] || fail "created: $(ls -A "$mnt/locked")"
