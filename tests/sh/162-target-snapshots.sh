#!/usr/bin/env bash
# Proves: --snapshot takes a read-only snapshot of the target's subvolume
# after each successful sync, and --keep prunes only vmsync's own.
#  - A snapshot lands in <subvol>/.vmsync-snapshots/, named by the UTC
#    time, read-only (btrfs property ro=true), and its image equals the
#    source as it was synced, also after later runs changed the target.
#  - --keep 2 after 4 runs leaves exactly the 2 newest of vmsync's
#    snapshots; a snapshot someone else made there (of the subvolume, or of
#    one of vmsync's snapshots) and a plain directory stay; snapshots of
#    another subvolume sharing the --snapshot-dir are not counted or touched.
#  - A half-made snapshot of an interrupted run (writable, marked, named
#    .tmp-PID) is deleted by the next run; an unmarked one is not.
#  - --snapshot-dir: relative is inside the target's subvolume (also when
#    the target is in a directory of it), absolute is used as it is.
#  - No snapshot when the sync fails (source missing: exit 2; target's
#    index immutable: exit 3), nor for a dry run.
#  - A target not on btrfs (a tmpfs, the test's directory when not btrfs)
#    with --snapshot: exit 1, "--snapshot needs a target on btrfs", no
#    target file; --keep or --snapshot-dir without --snapshot, --keep 0:
#    exit 1.
#  - A push (remote protocol) with --snapshot snapshots on the server side,
#    a pull on the local side; a push to a tmpfs is refused (exit 1).
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires jq chattr python3

mnt=$(mkbtrfs 2G)
btrfs subvolume create "$mnt/vol" > /dev/null
src=$mnt/disk.img
"$HOLES" make "$src" 32M 0:4M:1 20M:4M:2
snaps=$mnt/vol/.vmsync-snapshots
shopt -s nullglob

# ours DIR: vmsync's snapshots in DIR (named by the time), one a line.
ours() {
	local s
	for s in "$1"/*; do
		[[ $(basename "$s") =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{6}Z(\.[0-9]+)?$ ]] &&
			echo "$s"
	done
	return 0
}
count() {
	ours "$1" | wc -l
}
# holds DIR FILE IMG...: the FILE of vmsync's snapshots in DIR are the
# IMGs, one each, in any order (names do not sort by age within a second).
holds() {
	local dir=$1 file=$2 s i found
	shift 2
	[ "$(count "$dir")" -eq $# ] || fail "$dir: $(count "$dir") snapshots, not $#"
	for i in "$@"; do
		found=0
		for s in $(ours "$dir"); do
			cmp -s "$i" "$s/$file" && found=1
		done
		[ "$found" -eq 1 ] || fail "$dir: no snapshot holds $i"
	done
}
is_ro() {
	[ "$(btrfs property get -ts "$1" ro)" = "ro=true" ]
}

# --- One run, one snapshot, holding the image as synced.
vs -q --snapshot "$src" "$mnt/vol/"
same "$src" "$mnt/vol/disk.img"
[ "$(count "$snaps")" -eq 1 ] || fail "first run: $(count "$snaps") snapshots"
s1=$(ours "$snaps")
is_ro "$s1" || fail "$s1 is not read-only"
btrfs subvolume show "$s1" > /dev/null || fail "$s1 is not a subvolume"
same "$src" "$s1/disk.img"
cp --sparse=always "$src" "$TMP/v1.img"

# --- --keep 2 over 4 runs, with others' snapshots in the directory.
btrfs subvolume snapshot -r "$mnt/vol" "$snaps/mine" > /dev/null
btrfs subvolume snapshot -r "$s1" "$snaps/copy-of-first" > /dev/null
mkdir "$snaps/notes"
for i in 2 3 4 5; do
	"$HOLES" fill "$src" "$i"M:64K:"$i"
	cp --sparse=always "$src" "$TMP/v$i.img"
	vs -q --snapshot --keep 2 "$src" "$mnt/vol/"
	same "$src" "$mnt/vol/disk.img"
done
holds "$snaps" disk.img "$TMP/v4.img" "$TMP/v5.img"
for o in mine copy-of-first notes; do
	[ -d "$snaps/$o" ] || fail "--keep deleted $o, which vmsync did not make"
done
same "$TMP/v1.img" "$snaps/copy-of-first/disk.img"

# --- Another subvolume, same absolute --snapshot-dir: counted apart.
btrfs subvolume create "$mnt/vol2" > /dev/null
: > "$mnt/vol2/marker"
shared=$mnt/shared-snaps
vs -q --snapshot --snapshot-dir "$shared" "$src" "$mnt/vol2/"
vs -q --snapshot --snapshot-dir "$shared" "$src" "$mnt/vol/"
vs -q --snapshot --snapshot-dir "$shared" "$src" "$mnt/vol/"
[ "$(count "$shared")" -eq 3 ] || fail "absolute --snapshot-dir: $(count "$shared")"
vs -q --snapshot --snapshot-dir "$shared" --keep 1 "$src" "$mnt/vol/"
holds "$shared" disk.img "$src" "$src"
[ "$(for s in $(ours "$shared"); do [ -e "$s/marker" ] && echo "$s"; done |
	wc -l)" -eq 1 ] || fail "--keep 1 touched another subvolume's snapshot"
holds "$snaps" disk.img "$TMP/v4.img" "$TMP/v5.img"

# --- Relative --snapshot-dir: inside the subvolume, from a subdirectory.
mkdir "$mnt/vol/sub"
vs -q --snapshot --snapshot-dir rel "$src" "$mnt/vol/sub/"
[ "$(count "$mnt/vol/rel")" -eq 1 ] || fail "relative --snapshot-dir"
s=$(ours "$mnt/vol/rel")
same "$src" "$s/sub/disk.img"
[ ! -e "$mnt/vol/sub/rel" ] || fail "relative to the target's directory"

# --- A half-made snapshot (writable, marked, named .tmp-PID) left by a
# crash is removed by the next run; an unmarked .tmp- one stays.
uuid=$(btrfs subvolume show "$mnt/vol" | awk '$1 == "UUID:" { print $2; exit }')
btrfs subvolume snapshot "$mnt/vol" "$snaps/.tmp-99999" > /dev/null
python3 -c 'import os, sys
os.setxattr(sys.argv[1], "user.vmsync.snapshot-of",
    bytes.fromhex(sys.argv[2].replace("-", "")))' "$snaps/.tmp-99999" "$uuid"
btrfs subvolume snapshot "$mnt/vol" "$snaps/.tmp-1" > /dev/null
vs -q --snapshot "$src" "$mnt/vol/"
[ ! -e "$snaps/.tmp-99999" ] || fail "a half-made snapshot was left"
[ -d "$snaps/.tmp-1" ] || fail "an unmarked .tmp- subvolume was deleted"

# --- No snapshot for a failed sync, nor a dry run.
before=$(count "$snaps")
must_fail 2 "^vmsync: $TMP/missing.img: " vs --snapshot "$TMP/missing.img" "$mnt/vol/"
idx=$mnt/vol/.disk.img.vmsync-index
"$HOLES" fill "$src" 8M:64K:8
chattr +i "$idx"
cleanup_fn "chattr -i '$idx' 2>/dev/null"
must_fail 3 "^vmsync: " vs --snapshot "$src" "$mnt/vol/"
chattr -i "$idx"
[ "$(count "$snaps")" -eq "$before" ] || fail "a failed sync took a snapshot"
vs -q -n --snapshot "$src" "$mnt/vol/"
[ "$(count "$snaps")" -eq "$before" ] || fail "a dry run took a snapshot"
ours "$snaps" > "$TMP/before"
vs -q --snapshot "$src" "$mnt/vol/"
[ "$(count "$snaps")" -eq $((before + 1)) ] || fail "no snapshot after the repair"
same "$src" "$(ours "$snaps" | grep -vxF -f "$TMP/before")/disk.img"

# --- Targets not on btrfs; options without --snapshot.
mkdir "$TMP/tmpfs"
mount -t tmpfs -o size=64M vmsync-test "$TMP/tmpfs"
cleanup_fn "umount '$TMP/tmpfs' 2>/dev/null"
dirs=("$TMP/tmpfs")
[ "$(stat -f -c %T "$TMP")" = btrfs ] || { mkdir "$TMP/plain"; dirs+=("$TMP/plain"); }
for d in "${dirs[@]}"; do
	must_fail 1 "^vmsync: $d/disk.img: --snapshot needs a target on btrfs$" \
		vs --snapshot "$src" "$d/"
	must_fail 1 "^vmsync: $d/other.img: --snapshot needs a target on btrfs$" \
		vs --snapshot "$src" "$d/other.img"
	[ -z "$(ls -A "$d")" ] || fail "$d: --snapshot refused, but left $(ls -A "$d")"
done
must_fail 1 "--snapshot" vs --keep 2 "$src" "$mnt/vol/"
must_fail 1 "--snapshot" vs --snapshot-dir x "$src" "$mnt/vol/"
must_fail 1 "--keep" vs --snapshot --keep 0 "$src" "$mnt/vol/"

# --- A push with --snapshot: the server snapshots its target's subvolume.
btrfs subvolume create "$mnt/remote" > /dev/null
"$HOLES" fill "$src" 9M:64K:9
rvs -q --snapshot "$src" "host:$mnt/remote/"
same "$src" "$mnt/remote/disk.img"
[ "$(count "$mnt/remote/.vmsync-snapshots")" -eq 1 ] ||
	fail "push: $(count "$mnt/remote/.vmsync-snapshots") snapshots"
s=$(ours "$mnt/remote/.vmsync-snapshots")
is_ro "$s" || fail "push: $s is not read-only"
same "$src" "$s/disk.img"
# A pull with --snapshot snapshots the local target's subvolume.
btrfs subvolume create "$mnt/pulled" > /dev/null
rvs -q --snapshot "host:$src" "$mnt/pulled/"
same "$src" "$mnt/pulled/disk.img"
[ "$(count "$mnt/pulled/.vmsync-snapshots")" -eq 1 ] ||
	fail "pull: $(count "$mnt/pulled/.vmsync-snapshots") snapshots"
same "$src" "$(ours "$mnt/pulled/.vmsync-snapshots")/disk.img"
must_fail 1 "^vmsync: .*$TMP/tmpfs/disk.img: --snapshot needs a target on btrfs$" \
	rvs --snapshot "$src" "host:$TMP/tmpfs/"
[ -z "$(ls -A "$TMP/tmpfs")" ] || fail "push to tmpfs left $(ls -A "$TMP/tmpfs")"
