#!/usr/bin/env bash
# Proves: vmsync keeps its own files only in directories that are its own.
#  - A source's state directory (.vmsync beside the image, or --state-dir)
#    that is a symbolic link, belongs to another user or is writable by
#    group or others is refused: exit 2, one line naming it, no target
#    made, and nothing in the directory the link names is created, deleted
#    or renamed.
#  - The same for the target's snapshot directory (.vmsync-snapshots, or
#    --snapshot-dir) with --snapshot: exit 3, one line naming it, no
#    snapshot made, nothing touched where the link leads.
#  - Once the directory is vmsync's own again, the same runs work.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
id nobody > /dev/null 2>&1 || skip "needs a user 'nobody'"

mnt=$(mkbtrfs 1G)
btrfs subvolume create "$mnt/images" > /dev/null
btrfs subvolume create "$mnt/vol" > /dev/null
src=$mnt/images/disk.img
"$HOLES" make "$src" 16M 0:1M:1 8M:1M:2
elsewhere=$mnt/elsewhere
mkdir "$elsewhere"
echo planted > "$elsewhere/disk.img.new"
echo planted > "$elsewhere/disk.img.base"
listing() {
	(cd "$elsewhere" && find . -printf '%p %s %i\n' | sort; cat disk.img.new disk.img.base)
}
before=$(listing)

# --- The source's state directory.
ln -s "$elsewhere" "$mnt/images/.vmsync"
must_fail 2 "^vmsync: $mnt/images/\.vmsync: state directory is a symbolic link; refusing it$" \
	vs "$src" "$mnt/vol/"
must_fail 2 "symbolic link" vs -n "$src" "$mnt/vol/"
ln -s "$elsewhere" "$mnt/link-state"
must_fail 2 "^vmsync: $mnt/link-state: state directory is a symbolic link" \
	vs --state-dir "$mnt/link-state" "$src" "$mnt/vol/"
[ ! -e "$mnt/vol/disk.img" ] || fail "a refused state directory made a target"
[ "$(listing)" = "$before" ] || fail "files where .vmsync led were changed"
rm "$mnt/images/.vmsync"

mkdir -m 700 "$mnt/images/.vmsync"
chown nobody "$mnt/images/.vmsync"
must_fail 2 "^vmsync: $mnt/images/\.vmsync: state directory belongs to another user; refusing it$" \
	vs "$src" "$mnt/vol/"
chown root "$mnt/images/.vmsync"
chmod 777 "$mnt/images/.vmsync"
must_fail 2 "^vmsync: $mnt/images/\.vmsync: state directory is writable by group or others; refusing it$" \
	vs "$src" "$mnt/vol/"
chmod 1770 "$mnt/images/.vmsync"
must_fail 2 "writable by group or others" vs "$src" "$mnt/vol/"
[ -z "$(ls -A "$mnt/images/.vmsync")" ] || fail "a refused state directory was used"
[ ! -e "$mnt/vol/disk.img" ] || fail "a refused state directory made a target"
chmod 700 "$mnt/images/.vmsync"
vs -q "$src" "$mnt/vol/"
same "$src" "$mnt/vol/disk.img"
ls "$mnt/images/.vmsync/disk.img."*.base > /dev/null 2>&1 || fail "no base once the directory is vmsync's"

# --- The target's snapshot directory.
snaps=$mnt/vol/.vmsync-snapshots
ln -s "$elsewhere" "$snaps"
"$HOLES" fill "$src" 2M:64K:3
must_fail 3 "^vmsync: $snaps: snapshot directory is a symbolic link; refusing it$" \
	vs -q --snapshot "$src" "$mnt/vol/"
ln -s "$elsewhere" "$mnt/vol/link-snaps"
must_fail 3 "^vmsync: $mnt/vol/link-snaps: snapshot directory is a symbolic link" \
	vs -q --snapshot --snapshot-dir link-snaps "$src" "$mnt/vol/"
must_fail 3 "^vmsync: $mnt/vol/link-snaps: snapshot directory is a symbolic link" \
	vs -q --snapshot --snapshot-dir "$mnt/vol/link-snaps" "$src" "$mnt/vol/"
[ "$(listing)" = "$before" ] || fail "a snapshot was made where .vmsync-snapshots led"
rm "$snaps"
mkdir -m 755 "$snaps"
chown nobody "$snaps"
must_fail 3 "^vmsync: $snaps: snapshot directory belongs to another user; refusing it$" \
	vs -q --snapshot "$src" "$mnt/vol/"
chown root "$snaps"
chmod 775 "$snaps"
must_fail 3 "^vmsync: $snaps: snapshot directory is writable by group or others; refusing it$" \
	vs -q --snapshot "$src" "$mnt/vol/"
[ -z "$(ls -A "$snaps")" ] || fail "a refused snapshot directory was used"
chmod 755 "$snaps"
vs -q --snapshot "$src" "$mnt/vol/"
[ "$(ls "$snaps" | wc -l)" -eq 1 ] || fail "no snapshot once the directory is vmsync's"
same "$src" "$snaps"/*/disk.img
