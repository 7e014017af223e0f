#!/usr/bin/env bash
# Proves: a target that a running qemu holds is never written.  While
# qemu-io, or a qemu-storage-daemon exporting it writable, has the target
# open (qemu's OFD locks on the image's lock bytes), a sync exits 3 with one line naming
# the target and the VM, for a local run, a --checksum run and a push to
# a server; the target and its index do not change.  A dry run still
# reports.  --force writes anyway, and once qemu is gone a plain run
# syncs.
. "$VMSYNC_TOP/tests/functions.sh"
requires qemu-io qemu-img qemu-storage-daemon

src=$TMP/disk.img
"$HOLES" make "$src" 32M 0:1M:1 16M:1M:2
mkdir "$TMP/backup"
tgt=$TMP/backup/disk.img
idx=$TMP/backup/.disk.img.vmsync-index
vs -q "$src" "$TMP/backup/"
"$HOLES" fill "$src" 0:64K:3 20M:1M:4
cp --sparse=always "$tgt" "$TMP/backup.copy"
isum=$(md5sum < "$idx")
export VMSYNC_DEBUG_OPS=$TMP/ops
: > "$TMP/ops"

# qemu-io keeps the image open while its command FIFO stays open; the
# daemon until killed.
qemu_holds() {	# ARG: io or daemon
	if [ "$1" = io ]; then
		mkfifo "$TMP/qcmd"
		qemu-io -f raw "$tgt" < "$TMP/qcmd" > "$TMP/qout" 2>&1 &
		qpid=$!
		exec 7> "$TMP/qcmd"
	else
		qemu-storage-daemon \
			--blockdev driver=file,filename="$tgt",node-name=f \
			--nbd-server addr.type=unix,addr.path="$TMP/nbd.sock" \
			--export type=nbd,id=e,node-name=f,writable=on \
			> "$TMP/qout" 2>&1 &
		qpid=$!
	fi
	cleanup_fn "kill $qpid 2>/dev/null"
	ino=$(stat -c %i "$tgt")
	for _ in $(seq 500); do
		grep -q "OFDLCK .*:$ino " /proc/locks && return 0
		sleep 0.01
	done
	fail "qemu-io did not lock $tgt: $(cat "$TMP/qout")"
}
qemu_gone() {
	if [ -e "$TMP/qcmd" ]; then
		echo quit >&7
		exec 7>&-
		rm -f "$TMP/qcmd"
	else
		kill "$qpid"
	fi
	wait "$qpid" 2>/dev/null || true
}
unchanged() {
	[ ! -s "$TMP/ops" ] || fail "$1: wrote $(cat "$TMP/ops")"
	cmp "$TMP/backup.copy" "$tgt" || fail "$1: target changed"
	[ "$(md5sum < "$idx")" = "$isum" ] || fail "$1: index changed"
}

for holder in io daemon; do
	qemu_holds $holder
	for opt in "" -c; do
		# shellcheck disable=SC2086
		must_fail 3 "^vmsync: $tgt: in use by a VM: a qemu process holds a lock on it" \
			vs $opt "$src" "$TMP/backup/"
	done
	must_fail 3 "^vmsync: host: $tgt: in use by a VM" rvs "$src" "host:$TMP/backup/"
	unchanged "held by qemu $holder"
	vs -n "$src" "$TMP/backup/" > /dev/null || fail "dry run refused"
	: > "$TMP/ops"
	qemu_gone
done

qemu_holds io
vs -q --force "$src" "$TMP/backup/" || fail "--force refused"
same "$src" "$tgt"
qemu_gone
sync_stats "$src" "$TMP/backup/"
[ "$(stat_of index)" = trusted ] || fail "after --force: index $(stat_of index)"
[ "$(stat_of written_bytes)" -eq 0 ] || fail "after --force: wrote again"
