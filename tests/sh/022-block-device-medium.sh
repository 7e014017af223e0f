#!/usr/bin/env bash
# Proves: an index kept for a block-device target (--index) is not trusted
# once the device node holds another medium.  A loop device is detached and
# attached to a different (empty) file: same node, same inode, same size,
# same times, but other data.  The next run must not take the index's word
# for it: it compares with the device and ends with the source's content.
. "$VMSYNC_TOP/tests/functions.sh"
requires_root
requires jq losetup blockdev
[ -w /dev/loop-control ] || skip "needs /dev/loop-control"

M=1048576
"$HOLES" make "$TMP/src.raw" 32M 0:4M:1 20M:1M:2
truncate -s 32M "$TMP/one.raw" "$TMP/two.raw"
sdev=$(mkloopdev "$TMP/src.raw")
# The target device is detached and attached again below; detach it at
# exit only while it is still ours (another run may take a free number).
tdev=$(losetup -f --show "$TMP/one.raw") || fail "losetup"
cleanup_fn "case \$(losetup -nO BACK-FILE '$tdev' 2>/dev/null) in '$TMP'/*) losetup -d '$tdev';; esac"
idx=$TMP/dev.index

sync_stats --index "$idx" "$sdev" "$tdev"
sync_stats --index "$idx" "$sdev" "$tdev"
[ "$(stat_of index)" = trusted ] || fail "second run: index $(stat_of index)"
cmp "$sdev" "$tdev" || fail "first sync differs"

# Another medium behind the same node.
losetup -d "$tdev"
attached=0
for _ in 1 2 3 4 5 6 7 8 9 10; do
	if losetup "$tdev" "$TMP/two.raw" 2> /dev/null; then
		attached=1
		break
	fi
	sleep 0.2
done
[ "$attached" -eq 1 ] || skip "$tdev was taken by someone else"
cmp -s -n $M "$TMP/two.raw" "$tdev" || fail "not the new medium"

sync_stats --index "$idx" "$sdev" "$tdev"
blockdev --flushbufs "$tdev"
cmp "$sdev" "$tdev" || fail "the index of the old medium was trusted for the new one"
[ "$(stat_of index)" = rebuilt ] || fail "index $(stat_of index), not rebuilt"
