#!/usr/bin/env bash
# Proves: an existing NBD export named by a URI is synced with -O raw, read
# like nbd.c reads its own daemon's (block status and NBD reads): a raw
# image with holes served over nbd+unix:// lands in DEST/EXPORT.raw equal
# to it, holes kept; a run with nothing changed writes nothing; after the
# image is written (export stopped, qemu-io, export restarted) the next run
# writes only the 64 KiB changed; a qcow2 image served over nbd:// on
# 127.0.0.1 (export "vm/disk1") lands in disk1.raw equal to its guest disk.
# An export with an empty name is synced to a DEST file name, and refused
# (one line, exit 1) with DEST a directory.  Without -O raw, a socket that
# does not exist, an export the server does not have, an nbds:// URI, and
# the server killed mid-run: one line naming the URI, exit 2.
. "$VMSYNC_TOP/tests/functions.sh"
requires qemu-img qemu-io qemu-storage-daemon jq

M=1048576
K=1024
orig=$TMP/orig.img
"$HOLES" make "$orig" 64M 0:1M:1 8M:64K:2 40M:2M:3 63M:1M:4

# qsd_start ID NAME FMT IMAGE ADDR [OPTION...]: serve IMAGE read-only as
# the export NAME, stopped at exit.
qsd_start() {
	local id=$1 name=$2 fmt=$3 img=$4 addr=$5
	shift 5
	rm -f "$TMP/$id.pid"
	qemu-storage-daemon --daemonize --pidfile "$TMP/$id.pid" \
		--blockdev "driver=file,node-name=f-$id,filename=$img,read-only=on" \
		--blockdev "driver=$fmt,node-name=n-$id,file=f-$id,read-only=on" \
		--nbd-server "$addr" \
		--export "type=nbd,id=e-$id,node-name=n-$id,name=$name,writable=off" \
		"$@" 2> "$TMP/qsd.err" || return 1
	cleanup_fn "qsd_stop '$id'"
}
qsd_stop() {
	local p
	p=$(cat "$TMP/$1.pid" 2>/dev/null) || return 0
	kill "$p" 2>/dev/null || return 0
	for _ in $(seq 1 500); do
		[ -e "/proc/$p" ] || return 0
		sleep 0.01
	done
	kill -KILL "$p" 2>/dev/null || true
}

sock=$TMP/s.sock
qsd_start disk0 disk0 raw "$orig" "addr.type=unix,addr.path=$sock" \
	--export "type=nbd,id=e-anon,node-name=n-disk0,name=,writable=off" ||
	fail "qemu-storage-daemon: $(cat "$TMP/qsd.err")"
uri="nbd+unix:///disk0?socket=$sock"

mkdir "$TMP/out"
sync_stats -O raw "$uri" "$TMP/out/" 2> "$TMP/err" ||
	fail "exit $?: $(cat "$TMP/err")"
[ "$(ls "$TMP/out")" = disk0.raw ] || fail "target: $(ls "$TMP/out")"
target=$TMP/out/disk0.raw
same "$orig" "$target"
[ "$(data_ranges "$target")" = "$(data_ranges "$orig")" ] ||
	fail "target data $(data_ranges "$target"), source $(data_ranges "$orig")"
[ "$(stat_of written_bytes)" -eq $((4 * M + 64 * K)) ] ||
	fail "first run wrote $(stat_of written_bytes)"

# Nothing changed: nothing written.  -v says what does not apply.
sync_stats -v -O raw "$uri" "$TMP/out/" 2> "$TMP/err"
[ "$(stat_of written_bytes)" -eq 0 ] ||
	fail "unchanged run wrote $(stat_of written_bytes)"
grep -q "^vmsync: $uri: NBD export, read as it is served: no btrfs clone and no change detection" \
	"$TMP/err" || fail "-v: $(cat "$TMP/err")"

# Written while the export is stopped: only the change is written.
qsd_stop disk0
qemu-io -f raw -c "write -P 5 1M 64k" "$orig" > /dev/null
qsd_start disk0 disk0 raw "$orig" "addr.type=unix,addr.path=$sock" \
	--export "type=nbd,id=e-anon,node-name=n-disk0,name=,writable=off" ||
	fail "qemu-storage-daemon: $(cat "$TMP/qsd.err")"
sync_stats -O raw "$uri" "$TMP/out/"
w=$(stat_of written_bytes)
[ "$w" -ge $((64 * K)) ] && [ "$w" -le $((72 * K)) ] ||
	fail "incremental run wrote $w bytes"
same "$orig" "$target"
[ "$(data_ranges "$target")" = "$(data_ranges "$orig")" ] ||
	fail "incremental: target data $(data_ranges "$target")"

# An export with no name: DEST must name the target file.
mkdir "$TMP/anon"
must_fail 1 "^vmsync: nbd\\+unix:///\\?socket=$sock: the NBD export has no name to name the target after: give the target's file name as DEST" \
	vs -O raw "nbd+unix:///?socket=$sock" "$TMP/anon/"
vs -O raw "nbd+unix:///?socket=$sock" "$TMP/anon/mine.raw" ||
	fail "empty export name to a file: exit $?"
same "$orig" "$TMP/anon/mine.raw"

# A qcow2 image over TCP on 127.0.0.1, exported as "vm/disk1".
qemu-img convert -q -f raw -O qcow2 "$orig" "$TMP/q.qcow2"
qemu-io -f qcow2 -c "write -P 7 20M 128k" -c "write -z 40M 1M" \
	"$TMP/q.qcow2" > /dev/null
for _ in 1 2 3 4 5 6 7 8; do
	port=$((20000 + RANDOM % 20000))
	qsd_start q vm/disk1 qcow2 "$TMP/q.qcow2" \
		"addr.type=inet,addr.host=127.0.0.1,addr.port=$port" 2>/dev/null &&
		break
	port=
done 2> /dev/null || true
[ -n "$port" ] || fail "no free port: $(cat "$TMP/qsd.err")"
mkdir "$TMP/outq"
vs -O raw "nbd://127.0.0.1:$port/vm/disk1" "$TMP/outq/" 2> "$TMP/err" ||
	fail "nbd:// exit $?: $(cat "$TMP/err")"
[ "$(ls "$TMP/outq")" = disk1.raw ] || fail "nbd:// target: $(ls "$TMP/outq")"
qemu-img convert -f qcow2 -O raw "$TMP/q.qcow2" "$TMP/q.raw"
same "$TMP/q.raw" "$TMP/outq/disk1.raw"
[ "$(data_ranges "$TMP/outq/disk1.raw")" = "$(data_ranges "$TMP/q.raw")" ] ||
	fail "nbd://: target data $(data_ranges "$TMP/outq/disk1.raw")"

# Refusals: one line naming the URI, exit 2, nothing written.
mkdir "$TMP/none"
must_fail 2 "^vmsync: nbd\\+unix:///disk0\\?socket=$sock: an NBD export can only be synced as its guest disk; add -O raw\$" \
	vs "$uri" "$TMP/none/"
must_fail 2 "^vmsync: nbd\\+unix:///disk0\\?socket=$TMP/nosuch.sock: cannot connect to the NBD server: " \
	vs -O raw "nbd+unix:///disk0?socket=$TMP/nosuch.sock" "$TMP/none/"
must_fail 2 "^vmsync: nbd\\+unix:///nosuch\\?socket=$sock: cannot connect to the NBD server: " \
	vs -O raw "nbd+unix:///nosuch?socket=$sock" "$TMP/none/"
must_fail 2 "^vmsync: nbds://127.0.0.1/disk0: only nbd:// and nbd\\+unix:// URIs are read" \
	vs -O raw "nbds://127.0.0.1/disk0" "$TMP/none/"
[ -z "$(ls -A "$TMP/none")" ] || fail "refused runs wrote $(ls -A "$TMP/none")"

# The server killed mid-run (the run slowed by --bwlimit): one line.
"$HOLES" make "$TMP/big.img" 256M 0:128M:9
qsd_start big big raw "$TMP/big.img" "addr.type=unix,addr.path=$TMP/big.sock" ||
	fail "qemu-storage-daemon: $(cat "$TMP/qsd.err")"
mkdir "$TMP/outk"
"$VMSYNC" --bwlimit=20M -O raw "nbd+unix:///big?socket=$TMP/big.sock" \
	"$TMP/outk/" 2> "$TMP/err" &
pid=$!
sleep 0.5
kill -KILL "$(cat "$TMP/big.pid")"
rc=0
wait "$pid" || rc=$?
[ "$rc" -eq 2 ] || fail "server killed: exit $rc: $(cat "$TMP/err")"
[ "$(wc -l < "$TMP/err")" -eq 1 ] &&
	grep -q "^vmsync: nbd+unix:///big?socket=$TMP/big.sock: offset [0-9]*: .*NBD server" \
	"$TMP/err" || fail "server killed: not one line: $(cat "$TMP/err")"
