#!/usr/bin/env bash
# Proves: sources that are not disk images are refused at once, with a
# one-line error naming them, and no target is created:
#  - --format with anything but auto, raw or qcow2 is a usage error
#    (exit 1);
#  - a FIFO is refused (exit 2) without waiting for a writer, and also when
#    a writer holds it open;
#  - a FIFO or character device as the target is refused (exit 3) and left
#    as it was.
# --format=auto is the default: a raw image syncs, a vmdk is refused
# without -O raw.
# (UNIX sockets: 059-unix-sockets.sh.)
. "$VMSYNC_TOP/tests/functions.sh"
requires qemu-img jq mkfifo timeout

src=$TMP/disk.img
"$HOLES" make "$src" 16M 0:1M:1 8M:64K:2
out=$TMP/out
mkdir "$out"
nothing_made() {
	[ -z "$(ls -A "$out")" ] || fail "$1: created $(ls -A "$out")"
}

for f in foo vvfat QCOW2 RAW "" "raw,auto"; do
	must_fail 1 "^vmsync: --format '$f': " vs --format="$f" "$src" "$out/"
	nothing_made "--format=$f"
done
must_fail 1 "^vmsync: --format 'foo': " vs -f foo "$src" "$out/"
nothing_made "-f foo"

# --format=auto, spelled out.
sync_stats --format=auto "$src" "$out/"
same "$src" "$out/disk.img"
qemu-img create -q -f vmdk "$TMP/vm.vmdk" 64M
must_fail 2 "^vmsync: $TMP/vm.vmdk: a vmdk image can only" vs --format=auto "$TMP/vm.vmdk" "$out/"
# A format forced on a file that is not in it.
must_fail 2 "^vmsync: $src: not a qcow2 image" vs --format=qcow2 "$src" "$out/x.img"
rm "$out/disk.img" "$out/.disk.img.vmsync-index"
nothing_made "--format=auto"

# A FIFO nobody writes to: must not block in open() waiting for a writer.
mkfifo "$TMP/fifo"
must_fail 2 "^vmsync: $TMP/fifo: " timeout 5 "$VMSYNC" "$TMP/fifo" "$out/"
nothing_made "fifo source"
must_fail 2 "^vmsync: $TMP/fifo: " timeout 5 "$VMSYNC" --format=raw "$TMP/fifo" "$out/x.img"
must_fail 2 "^vmsync: $TMP/fifo: " timeout 5 "$VMSYNC" -n "$TMP/fifo" "$out/"
nothing_made "fifo source, --format=raw and -n"
# A FIFO that another process holds open for writing (O_RDWR: no wait).
sleep 30 <> "$TMP/fifo" &
writer=$!
cleanup_fn "kill $writer 2>/dev/null"
must_fail 2 "^vmsync: $TMP/fifo: .*not a regular file or a block device" \
	timeout 5 "$VMSYNC" "$TMP/fifo" "$out/"
kill "$writer" 2>/dev/null || true
wait "$writer" 2>/dev/null || true
nothing_made "fifo source with a writer"

# Special files as the target: refused, and still what they were.
mkfifo "$TMP/tfifo"
must_fail 3 "^vmsync: $TMP/tfifo: .*not a regular file or a block device" \
	timeout 5 "$VMSYNC" "$src" "$TMP/tfifo"
[ -p "$TMP/tfifo" ] || fail "target FIFO replaced"
[ ! -e "$TMP/.tfifo.vmsync-index" ] || fail "index made for a FIFO target"
must_fail 3 "^vmsync: /dev/null: .*not a regular file or a block device" \
	timeout 5 "$VMSYNC" "$src" /dev/null
[ -c /dev/null ] || fail "/dev/null is no longer a character device"
[ ! -e /dev/.null.vmsync-index ] || fail "index made beside /dev/null"
