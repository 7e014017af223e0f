#!/usr/bin/env bash
# Proves: a source on btrfs is read through a point-in-time clone.
#  - A sync leaves .vmsync/NAME.KEY.base (KEY: the target's) beside the
#    image (a 16-byte
#    user.vmsync.view id on it, its content the synced one) and no .new;
#    the live image is never read (its atime stays put on a strictatime
#    mount, where --source-snapshot=never does move it); the next sync
#    replaces the base (a new id).
#  - The copy is point-in-time: the live image rewritten while a slow push
#    (--bwlimit) is running (still running once the rewrite is done) does
#    not reach the target, which ends equal to the base.
#  - --state-dir DIR keeps the state there (and leaves the default one
#    alone); a --state-dir the clone cannot be made in (another btrfs, a
#    non-btrfs directory, a missing parent) is an error, exit 2, naming it,
#    creating no target.
#  - --source-snapshot=never makes no state directory; a source that is not
#    on btrfs is read live (-v says "not on btrfs"), no state directory; a
#    symlink off btrfs to an image on btrfs is read through a clone, with
#    no warning and no state directory beside the symlink.
#  - A source in a read-only snapshot is read directly: no warning, no
#    state directory, an exact copy; also when the snapshot holds a .vmsync
#    (a snapshot of a directory synced before).
#  - A dry run leaves no .new, keeps the base (same id, same bytes) and the
#    target, makes no state directory where there is none, and works with a
#    --state-dir that does not exist yet (creating nothing).
#  - While another process holds .vmsync/NAME.lock, vmsync exits 6 with a
#    one-line error and changes nothing; once released, the next run works.
#  - --source-snapshot=sometimes, and --since with --source-snapshot=never
#    or with several sources, exit 1.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires jq flock python3

mnt=$(mkbtrfs 1G)
mnt2=$(mkbtrfs 1G)
# atime is only kept exactly under strictatime (relatime skips updates).
mount -o remount,strictatime "$mnt" || skip "cannot remount strictatime"
btrfs subvolume create "$mnt/images" > /dev/null
mkdir "$mnt/backup"
src=$mnt/images/disk.img
state=$mnt/images/.vmsync
tgt=$mnt/backup/disk.img
"$HOLES" make "$src" 64M 0:8M:1 20M:4M:2 63M:1M:3

view_id() {	# the user.vmsync.view xattr of $1, in hex
	python3 -c 'import os, sys
print(os.getxattr(sys.argv[1], "user.vmsync.view").hex())' "$1"
}
atime() {
	stat -c %X "$1"
}
old=$(date -d 2001-01-01 +%s)
base_of() {	# DIR NAME: the one base of NAME in DIR (NAME.<key>.base)
	local b
	b=$(ls -d "$1/$2".[0-9a-f]*.base 2> /dev/null) || fail "no base of $2 in $1"
	[ "$(printf '%s\n' "$b" | wc -l)" -eq 1 ] || fail "bases of $2 in $1: $b"
	printf '%s\n' "$b"
}

# --- The first sync reads a clone, kept as the base.
touch -a -d @"$old" "$src"
vs -q "$src" "$mnt/backup/"
[ "$(atime "$src")" -eq "$old" ] ||
	fail "the live image was read (atime $(atime "$src"))"
same "$src" "$tgt"
base_of "$state" disk.img > /dev/null
[ ! -e "$state/disk.img.new" ] || fail "$state/disk.img.new left behind"
id1=$(view_id "$(base_of "$state" disk.img)")
[ "${#id1}" -eq 32 ] || fail "view id '$id1' is not 16 bytes"
[ "$id1" != 00000000000000000000000000000000 ] || fail "view id is zero"
cmp "$(base_of "$state" disk.img)" "$tgt" || fail "the base is not what was synced"

# The next sync, after a change, replaces the base.
"$HOLES" fill "$src" 1M:64K:4
vs -q "$src" "$mnt/backup/"
same "$src" "$tgt"
[ ! -e "$state/disk.img.new" ] || fail "second run: .new left behind"
id2=$(view_id "$(base_of "$state" disk.img)")
[ "$id2" != "$id1" ] || fail "the base was not replaced"
cmp "$(base_of "$state" disk.img)" "$src" || fail "second run: base differs"

# --- Point in time: rewrite the live image while a slow push reads it.
pit=$mnt/images/pit.img
"$HOLES" make "$pit" 16M 0:4M:5
mkdir "$mnt/pushed"
rvs -q --bwlimit=1M "$pit" "host:$mnt/pushed/" &
pid=$!
cleanup_fn "kill $pid 2>/dev/null"
# The target exists once the source was opened, and so cloned.
for _ in $(seq 1000); do
	[ -e "$mnt/pushed/pit.img" ] && break
	kill -0 "$pid" 2> /dev/null || break
	sleep 0.01
done
[ -e "$mnt/pushed/pit.img" ] || fail "the push did not start"
"$HOLES" fill "$pit" 0:4M:6
kill -0 "$pid" 2> /dev/null ||
	fail "the push ended before the image was rewritten: nothing was tested"
wait "$pid" || fail "the slow push failed"
cmp "$(base_of "$state" pit.img)" "$mnt/pushed/pit.img" ||
	fail "the push is not the clone taken at its start"
! cmp -s "$pit" "$mnt/pushed/pit.img" ||
	fail "the push saw writes made after it started"

# --- --state-dir DIR.
base_sum=$(md5sum < "$(base_of "$state" disk.img)")
"$HOLES" fill "$src" 2M:64K:7
vs -q --state-dir "$mnt/state" "$src" "$mnt/backup/"
same "$src" "$tgt"
base_of "$mnt/state" disk.img > /dev/null
[ ! -e "$mnt/state/disk.img.new" ] || fail "--state-dir: .new left behind"
view_id "$(base_of "$mnt/state" disk.img)" > /dev/null
[ "$(view_id "$(base_of "$state" disk.img)")" = "$id2" ] ||
	fail "--state-dir: the default base's id changed"
[ "$(md5sum < "$(base_of "$state" disk.img)")" = "$base_sum" ] ||
	fail "--state-dir: the default base changed"
# Where no clone can be made: an error naming the directory.
for d in "$mnt2/state" "$TMP/state" "$mnt/no/such/state"; do
	must_fail 2 "^vmsync: $d: " \
		vs --state-dir "$d" "$src" "$mnt/backup/elsewhere.img"
	[ ! -e "$mnt/backup/elsewhere.img" ] ||
		fail "--state-dir $d: a target was created"
done

# --- --source-snapshot=never, and a source not on btrfs: no state.
mkdir "$mnt/live"
"$HOLES" make "$mnt/live/disk.img" 16M 0:1M:8
touch -a -d @"$old" "$mnt/live/disk.img"
vs -q --source-snapshot=never "$mnt/live/disk.img" "$mnt/backup/never.img"
read_atime=$(atime "$mnt/live/disk.img")
# The copy before the verdict (cmp moves the atime itself): should the
# atime not have moved, this says whether vmsync read the data at all.
same "$mnt/live/disk.img" "$mnt/backup/never.img"
[ "$read_atime" -ne "$old" ] ||
	fail "reading the live image did not move its atime, though the copy is equal: the atime check proves nothing"
[ ! -e "$mnt/live/.vmsync" ] || fail "--source-snapshot=never made a state dir"
if [ "$(stat -f -c %T "$TMP")" != btrfs ]; then
	mkdir "$TMP/plain"
	"$HOLES" make "$TMP/plain/disk.img" 16M 0:1M:9
	vs -v "$TMP/plain/disk.img" "$mnt/backup/plain.img" 2> "$TMP/err"
	grep -q "^vmsync: $TMP/plain/disk.img: not on btrfs: reading the live image$" \
		"$TMP/err" || { cat "$TMP/err"; fail "-v does not say 'not on btrfs'"; }
	same "$TMP/plain/disk.img" "$mnt/backup/plain.img"
	[ ! -e "$TMP/plain/.vmsync" ] || fail "a state dir beside a non-btrfs source"

	# A symlink there to the image on btrfs: still read through a clone,
	# its state kept on the image's filesystem.
	ln -s "$src" "$TMP/plain/link.img"
	touch -a -d @"$old" "$src"
	rc=0
	vs "$TMP/plain/link.img" "$mnt/backup/link.img" 2> "$TMP/err" || rc=$?
	[ "$rc" -eq 0 ] || { cat "$TMP/err"; fail "through a symlink: exit $rc"; }
	[ "$(atime "$src")" -eq "$old" ] ||
		{ cat "$TMP/err"; fail "through a symlink, the live image was read"; }
	[ ! -s "$TMP/err" ] || { cat "$TMP/err"; fail "through a symlink: warnings"; }
	[ ! -e "$TMP/plain/.vmsync" ] ||
		fail "through a symlink: a state dir beside the symlink, off btrfs"
	same "$src" "$mnt/backup/link.img"
	# That target's base is kept beside the main one's: the rest of
	# this test follows the main target's alone.
	[ "$(ls "$state"/disk.img.*.base | wc -l)" -eq 2 ] ||
		fail "through a symlink: not a base of its own"
	rm "$(ls -td "$state"/disk.img.*.base | head -1)"
fi

# --- A source in a read-only snapshot is read as it is: a snapshot of a
# fresh subvolume, and one of the images' subvolume, which holds the
# .vmsync of the runs above (as a snapper snapshot of it would).
btrfs subvolume create "$mnt/ro" > /dev/null
"$HOLES" make "$mnt/ro/disk.img" 32M 0:2M:10 30M:2M:11
btrfs subvolume snapshot -r "$mnt/ro" "$mnt/ro-snap" > /dev/null
btrfs subvolume snapshot -r "$mnt/images" "$mnt/images-snap" > /dev/null
for s in "$mnt/ro-snap" "$mnt/images-snap"; do
	rc=0
	vs "$s/disk.img" "$mnt/backup/ro.img" 2> "$TMP/err" || rc=$?
	[ "$rc" -eq 0 ] ||
		{ cat "$TMP/err"; fail "$s: syncing from a read-only snapshot exits $rc"; }
	[ ! -s "$TMP/err" ] ||
		{ cat "$TMP/err"; fail "$s: a source in a read-only snapshot is not read directly"; }
	same "$s/disk.img" "$mnt/backup/ro.img"
done
[ ! -e "$mnt/ro-snap/.vmsync" ] || fail "a state dir inside the snapshot"

# --- Dry runs.
"$HOLES" fill "$src" 3M:64K:12
id3=$(view_id "$(base_of "$state" disk.img)")
base_sum=$(md5sum < "$(base_of "$state" disk.img)")
tgt_sum=$(md5sum < "$tgt")
vs -q -n "$src" "$mnt/backup/"
[ ! -e "$state/disk.img.new" ] || fail "dry run: .new left behind"
[ "$(view_id "$(base_of "$state" disk.img)")" = "$id3" ] || fail "dry run: base id changed"
[ "$(md5sum < "$(base_of "$state" disk.img)")" = "$base_sum" ] || fail "dry run: base changed"
[ "$(md5sum < "$tgt")" = "$tgt_sum" ] || fail "dry run: target changed"
mkdir "$mnt/fresh"
"$HOLES" make "$mnt/fresh/disk.img" 16M 0:1M:13
vs -q -n "$mnt/fresh/disk.img" "$mnt/backup/fresh.img"
[ ! -e "$mnt/fresh/.vmsync" ] || fail "dry run made a state directory"
vs -q -n --state-dir "$mnt/newstate" "$mnt/fresh/disk.img" "$mnt/backup/fresh.img" ||
	fail "dry run with a --state-dir that does not exist yet fails"
[ ! -e "$mnt/newstate" ] || fail "dry run made the --state-dir"
[ ! -e "$mnt/backup/fresh.img" ] || fail "dry run made a target"

# --- Another process holds the image's lock.
hold_lock "$state/disk.img.lock"
must_fail 6 "^vmsync: $src: .*another vmsync" vs "$src" "$mnt/backup/"
must_fail 6 "^vmsync: $src: .*another vmsync" vs -n "$src" "$mnt/backup/"
[ ! -e "$state/disk.img.new" ] || fail "locked: .new made"
[ "$(view_id "$(base_of "$state" disk.img)")" = "$id3" ] || fail "locked: base replaced"
[ "$(md5sum < "$tgt")" = "$tgt_sum" ] || fail "locked: target changed"
kill "$holder"
wait "$holder" 2> /dev/null || true
vs -q "$src" "$mnt/backup/"
same "$src" "$tgt"

# --- Usage errors.
must_fail 1 "source-snapshot" vs --source-snapshot=sometimes "$src" "$mnt/backup/"
must_fail 1 "since" vs --source-snapshot=never --since "$(base_of "$state" disk.img)" \
	"$src" "$mnt/backup/"
must_fail 1 "since" vs --since "$(base_of "$state" disk.img)" "$src" \
	"$mnt/fresh/disk.img" "$mnt/backup/"
same "$src" "$tgt"
