#!/usr/bin/env bash
# Proves: where the fsync() of a directory fails after a rename (a disk
# failing, here an LD_PRELOAD shim that fails it for one directory), the
# run says so and exits 3 instead of 0, and nothing is lost for it:
#  - an archive: renamed over DEST, complete; one line naming DEST;
#  - a --snapshot run: the snapshot is made and named, but no older
#    snapshot is pruned for it (--keep=1 keeps both), one line naming the
#    snapshot directory; the live copy is the image.
# The shim aimed at a directory no run syncs changes nothing (exit 0).
. "$VMSYNC_TOP/tests/functions.sh"
requires zstd tar
requires_btrfs

SHIM=$VMSYNC_HELPERS/failfsync.so
[ -f "$SHIM" ] || fail "no $SHIM"
# The sanitizers' runtime would otherwise insist on coming first.
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0

# failing DIR CMD...: run CMD with the fsync() of directories named DIR
# failing.
failing() {
	local dir=$1
	shift
	LD_PRELOAD=$SHIM FAILFSYNC_DIR=$dir "$@"
}

cd "$TMP" || fail "cd $TMP"
"$HOLES" make vm.img 32M 0:2M:1 8M:1M:2
mkdir arch

# (1) An archive whose directory cannot be synced.
failing nothing "$VMSYNC" vm.img arch/ok.tar.zst || fail "untouched: exit $?"
failing arch must_fail 3 "arch/vm.tar.zst: written, but its directory cannot be synced" \
	"$VMSYNC" vm.img arch/vm.tar.zst
zstd -q -t arch/vm.tar.zst || fail "the archive is damaged"
zstd -q -d -c arch/vm.tar.zst | tar -xOf - vm.img | cmp - vm.img ||
	fail "the archive's entry differs"

# (2) A snapshot whose directory cannot be synced prunes nothing.
mnt=$(mkbtrfs 1G)
btrfs subvolume create "$mnt/vol" > /dev/null
mkdir "$mnt/vol/images"
vs -q --snapshot --keep=1 vm.img "$mnt/vol/images/" || fail "first run"
snaps=$mnt/vol/.vmsync-snapshots
[ "$(ls "$snaps" | wc -l)" -eq 1 ] || fail "snapshots: $(ls "$snaps")"
first=$(ls "$snaps")
sleep 1.1
"$HOLES" fill vm.img 20M:1M:5
failing .vmsync-snapshots must_fail 3 "$snaps: snapshot .* made, but the directory cannot be synced; no snapshot pruned" \
	"$VMSYNC" -q --snapshot --keep=1 vm.img "$mnt/vol/images/"
[ "$(ls "$snaps" | wc -l)" -eq 2 ] || fail "snapshots after: $(ls "$snaps")"
[ -f "$snaps/$first/images/vm.img" ] || fail "the older snapshot was pruned"
second=$(ls "$snaps" | grep -v -x "$first")
same "$snaps/$second/images/vm.img" vm.img
same "$mnt/vol/images/vm.img" vm.img
# Synced again: the next run prunes as asked.
sleep 1.1
vs -q --snapshot --keep=1 vm.img "$mnt/vol/images/" || fail "third run"
[ "$(ls "$snaps" | wc -l)" -eq 1 ] || fail "not pruned: $(ls "$snaps")"
echo "ok"
