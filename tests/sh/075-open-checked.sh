#!/usr/bin/env bash
# Proves: nothing is opened before it is known to be a regular file or a
# block device.  A target that is a FIFO or a character device (a node of
# /dev/zero), and an index that is a FIFO or a character device, are
# refused with exit 3 and one line, and strace shows that vmsync never
# opened them other than with O_PATH.  The same for a source that is a
# FIFO or a character device (exit 2).
. "$VMSYNC_TOP/tests/functions.sh"
requires_root
requires strace mknod
# LeakSanitizer cannot run under ptrace (a SANITIZE=1 build).
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0

src=$TMP/disk.img
"$HOLES" make "$src" 4M 0:1M:1
mkdir "$TMP/backup"
mkfifo "$TMP/backup/fifo.img"
mknod "$TMP/backup/zero.img" c 1 5
"$HOLES" make "$TMP/backup/real.img" 4M 0:1M:2

opened() {	# ARG: name; the opens of it without O_PATH
	grep -E "open(at2?)?\(.*$1\"" "$TMP/trace" | grep -v O_PATH || true
}

for name in fifo.img zero.img; do
	must_fail 3 "^vmsync: $TMP/backup/$name: target is not a regular file" \
		strace -f -qq -o "$TMP/trace" -e trace=open,openat,openat2 \
		"$VMSYNC" "$src" "$TMP/backup/$name"
	[ -z "$(opened "$name")" ] || fail "$name opened: $(opened "$name")"
done
for kind in fifo zero; do
	idx=$TMP/backup/.real.img.vmsync-index
	rm -f "$idx"
	if [ $kind = fifo ]; then mkfifo "$idx"; else mknod "$idx" c 1 5; fi
	must_fail 3 "^vmsync: $idx: index is not a regular file" \
		strace -f -qq -o "$TMP/trace" -e trace=open,openat,openat2 \
		"$VMSYNC" "$src" "$TMP/backup/real.img"
	[ -z "$(opened .real.img.vmsync-index)" ] ||
		fail "$kind index opened: $(opened .real.img.vmsync-index)"
done

# Sources too: a FIFO or a character device is refused (exit 2) without
# being opened but with O_PATH; a regular file and a block device are
# opened.
mkfifo "$TMP/src.fifo"
mknod "$TMP/src.zero" c 1 5
for name in src.fifo src.zero; do
	must_fail 2 "^vmsync: $TMP/$name: source is not a regular file or a block device" \
		strace -f -qq -o "$TMP/trace" -e trace=open,openat,openat2 \
		"$VMSYNC" "$TMP/$name" "$TMP/backup/"
	[ -z "$(opened "$name")" ] || fail "$name opened: $(opened "$name")"
done
