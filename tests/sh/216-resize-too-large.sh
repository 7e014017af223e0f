#!/usr/bin/env bash
# Proves: a source larger than the target's filesystem can hold a file
# (32 TiB on ext4, whose limit is 16 TiB) is refused before anything is
# touched: exit 3, one line naming the target and the size, the target
# and its index byte for byte as they were, the index still clean
# (--verify passes) and trusted by the next run, which writes nothing.
#  - The same for a sync, a push to a server and an archive import, each
#    onto a target an earlier 1 MiB sync made; and a new target that
#    cannot be made leaves no file behind.
. "$VMSYNC_TOP/tests/functions.sh"
requires_ext4
requires qemu-img jq tar

mnt=$(mkext4 256M)
mkdir "$TMP/small" "$TMP/big" "$mnt/dir" "$mnt/new"
"$HOLES" make "$TMP/disk.img" 1M 0:1M:1
qemu-img convert -f raw -O qcow2 "$TMP/disk.img" "$TMP/small/vm.qcow2"
cp "$TMP/small/vm.qcow2" "$TMP/big/vm.qcow2"
qemu-img resize -q -f qcow2 "$TMP/big/vm.qcow2" 32T
size=$((32 << 40))
tgt=$mnt/dir/vm.raw
index=$mnt/dir/.vm.raw.vmsync-index

vs -q -O raw "$TMP/small/vm.qcow2" "$mnt/dir/" || fail "first sync"
same "$TMP/disk.img" "$tgt"
cp -p "$tgt" "$TMP/tgt.before"
cp -p "$index" "$TMP/index.before"
stat -c '%s %Y %Z' "$tgt" > "$TMP/stat.before"

# untouched: the target and its index are as the first sync left them.
untouched() {
	cmp "$tgt" "$TMP/tgt.before" || fail "$1: the target changed"
	cmp "$index" "$TMP/index.before" || fail "$1: the index changed"
	stat -c '%s %Y %Z' "$tgt" | diff "$TMP/stat.before" - ||
		fail "$1: the target's size or times changed"
	vs --verify "$tgt" > /dev/null || fail "$1: verify exit $?"
}

re="vm.raw: resize to $size bytes: File too large"
must_fail 3 "$re" vs -q -O raw "$TMP/big/vm.qcow2" "$mnt/dir/"
untouched sync

must_fail 3 "$re" rvs -q -O raw "$TMP/big/vm.qcow2" "host:$mnt/dir/"
untouched push

vs -q -O raw "$TMP/big/vm.qcow2" "$TMP/big.tar" || fail "export"
tar -tvf "$TMP/big.tar" | grep -q " $size .* vm.raw$" ||
	fail "the archive's entry: $(tar -tvf "$TMP/big.tar")"
must_fail 3 "$re" vs -q "$TMP/big.tar" "$mnt/dir/"
untouched import

# The next run trusts the index and has nothing to do.
export VMSYNC_DEBUG_OPS=$TMP/ops
: > "$TMP/ops"
sync_stats -O raw "$TMP/small/vm.qcow2" "$mnt/dir/" || fail "sync exit $?"
[ "$(stat_of index)" = trusted ] || fail "index $(stat_of index)"
[ ! -s "$TMP/ops" ] || fail "the next run changed: $(cat "$TMP/ops")"
same "$TMP/disk.img" "$tgt"

must_fail 3 "$re" vs -q -O raw "$TMP/big/vm.qcow2" "$mnt/new/"
[ -z "$(ls -A "$mnt/new")" ] || fail "left behind: $(ls -A "$mnt/new")"
exit 0
