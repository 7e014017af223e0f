#!/usr/bin/env bash
# Proves: vmsync never writes through a symbolic link it did not make.
#  - A target path that is a symlink (to a file elsewhere, or dangling) is
#    refused with exit 3: the file it points to is unchanged, and nothing
#    is created (no target, no index, no file at the dangling end).
#  - An index path (DIR/.NAME.vmsync-index) that someone replaced by a
#    symlink, to a file or dangling, is refused with exit 3: the outside
#    file is unchanged or not created, and the existing target is
#    unchanged.  The same for an index path that is a directory or a FIFO.
#  - --index naming a symlink is refused the same way.
# A directory symlink as DEST is fine: it is a directory.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires qemu-img jq

mnt=$(mkbtrfs 1G)
src=$TMP/disk.img
"$HOLES" make "$src" 128M 0:1M:1 64M:1M:2
mkdir "$mnt/backup" "$mnt/elsewhere"
victim=$mnt/elsewhere/victim.img
"$HOLES" make "$victim" 128M 0:2M:9
vsum=$(md5sum < "$victim")
vstat=$(stat -c '%s %Y.%y %Z.%z' "$victim")

victim_intact() {
	[ "$(md5sum < "$victim")" = "$vsum" ] || fail "$1: victim changed"
	[ "$(stat -c '%s %Y.%y %Z.%z' "$victim")" = "$vstat" ] ||
		fail "$1: victim's size or times changed"
	[ "$(ls -A "$mnt/elsewhere")" = victim.img ] ||
		fail "$1: created in elsewhere/: $(ls -A "$mnt/elsewhere")"
}

# Target symlinks: to a file, dangling, relative or absolute.
ln -s ../elsewhere/victim.img "$mnt/backup/disk.img"
for args in "$src $mnt/backup/" "$src $mnt/backup/disk.img" \
    "-c $src $mnt/backup/disk.img" "-n $src $mnt/backup/disk.img"; do
	# shellcheck disable=SC2086
	must_fail 3 "^vmsync: $mnt/backup/disk.img: .*symbolic link" vs $args
	victim_intact "target symlink ($args)"
done
ln -s "$mnt/elsewhere/new.img" "$mnt/backup/dangling.img"
must_fail 3 "^vmsync: $mnt/backup/dangling.img: .*symbolic link" \
	vs "$src" "$mnt/backup/dangling.img"
must_fail 3 "^vmsync: $mnt/backup/dangling.img: .*symbolic link" \
	vs --index="$TMP/idx" "$src" "$mnt/backup/dangling.img"
victim_intact "dangling target symlink"
[ ! -e "$TMP/idx" ] || fail "index created for a refused target"
[ "$(ls -A "$mnt/backup" | sort | tr '\n' ' ')" = "dangling.img disk.img " ] ||
	fail "created beside the target symlinks: $(ls -A "$mnt/backup")"
rm "$mnt/backup/disk.img" "$mnt/backup/dangling.img"

# A good backup, then its index path is replaced.
tgt=$mnt/backup/disk.img
idx=$mnt/backup/.disk.img.vmsync-index
vs -q "$src" "$mnt/backup/"
same "$src" "$tgt"
cp --sparse=always "$tgt" "$TMP/backup.copy"
"$HOLES" fill "$src" 0:64K:3 100M:1M:4	# work a run would do
tstat=$(stat -c '%s %Y.%y %Z.%z' "$tgt")

target_intact() {
	cmp "$TMP/backup.copy" "$tgt" || fail "$1: target changed"
	[ "$(stat -c '%s %Y.%y %Z.%z' "$tgt")" = "$tstat" ] ||
		fail "$1: target's size or times changed"
}

mv "$idx" "$TMP/good-index"
for kind in file dangling dir fifo; do
	case $kind in
	file) ln -s ../elsewhere/victim.img "$idx"; re="symbolic link" ;;
	dangling) ln -s "$mnt/elsewhere/planted" "$idx"; re="symbolic link" ;;
	dir) mkdir "$idx"; re="" ;;
	fifo) mkfifo "$idx"; re="" ;;
	esac
	must_fail 3 "^vmsync: $idx: .*$re" timeout 5 "$VMSYNC" "$src" "$mnt/backup/"
	must_fail 3 "^vmsync: $idx: .*$re" timeout 5 "$VMSYNC" -c "$src" "$tgt"
	must_fail 3 "^vmsync: $idx: .*$re" timeout 5 "$VMSYNC" -n "$src" "$tgt"
	victim_intact "index $kind"
	target_intact "index $kind"
	[ ! -e "$mnt/elsewhere/planted" ] || fail "index $kind: created the link's end"
	rm -rf "$idx"
done

# --index PATH that is a symlink.
ln -s "$mnt/elsewhere/victim.img" "$TMP/idx-link"
must_fail 3 "^vmsync: $TMP/idx-link: .*symbolic link" \
	vs --index="$TMP/idx-link" "$src" "$tgt"
victim_intact "--index symlink"
target_intact "--index symlink"

# With the real index back, the next run trusts it: nothing above made it
# dirty or touched the target.
mv "$TMP/good-index" "$idx"
sync_stats "$src" "$mnt/backup/"
[ "$(stat_of index)" = trusted ] || fail "index not trusted after the refused runs"
[ "$(stat_of written_bytes)" -eq $((65536 + 1048576)) ] ||
	fail "wrote $(stat_of written_bytes) bytes, want the two changed ranges"
same "$src" "$tgt"
victim_intact "end"

# A DEST that is a symlink to a directory is that directory.
ln -s "$mnt/backup" "$TMP/backup-link"
sync_stats "$src" "$TMP/backup-link"
[ "$(stat_of target)" = "$TMP/backup-link/disk.img" ] || fail "target $(stat_of target)"
[ "$(stat_of index)" = trusted ] || fail "through a directory symlink: not trusted"
[ "$(stat_of written_bytes)" -eq 0 ] || fail "through a directory symlink: wrote"
