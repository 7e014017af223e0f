#!/usr/bin/env bash
# Proves: vmdk (monolithicSparse, streamOptimized), vdi (dynamic, static),
# vhdx (dynamic, fixed), vpc (dynamic, fixed) and qed images, named so,
# are synced with -O raw through qemu-storage-daemon and NBD: the target
# equals the guest disk (cmp, qemu-img compare) and its holes are the
# guest's; after qemu-io writes 64 KiB and zeroes 1 MiB the next run writes
# only the 64 KiB, punches the zeroed range and compares equal; a run with
# nothing changed writes nothing.  Without -O raw, a damaged or garbage
# image, a missing qemu-storage-daemon (VMSYNC_QSD) with no qemu-nbd
# either (VMSYNC_QEMU_NBD; the fallback: 201-qemu-nbd-fallback): one line,
# exit 2, nothing written.  The daemon is never left behind: not after it is
# killed mid-run (one line), nor after vmsync gets SIGTERM or SIGKILL;
# its private socket directory is gone too.
. "$VMSYNC_TOP/tests/functions.sh"
requires qemu-img qemu-io qemu-storage-daemon jq

M=1048576
K=1024
export TMPDIR=$TMP/tmpd
mkdir "$TMPDIR"
orig=$TMP/orig.img
"$HOLES" make "$orig" 64M 0:1M:1 8M:64K:2 40M:2M:3 63M:1M:4

no_daemon_dir() {
	[ -z "$(ls -A "$TMPDIR")" ] || fail "$1: left $(ls -A "$TMPDIR")"
}
# gone PID: no such process, or a zombie nobody reaped yet.
gone() {
	[ ! -e "/proc/$1" ] || grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat"
}

check_synced() {	# IMAGE FMT TARGET: the target is the guest disk
	local exp=$TMP/expected.raw
	rm -f "$exp"
	qemu-img convert -f "$2" -O raw "$1" "$exp"
	same "$exp" "$3"
	[ "$(data_ranges "$3")" = "$(data_ranges "$exp")" ] ||
		fail "$1: target data $(data_ranges "$3"), guest data" \
		    "$(data_ranges "$exp")"
}

# name FMT OPTIONS WRITABLE
while read -r name fmt opts writable; do
	img=$TMP/$name
	out=$TMP/out-$name
	mkdir "$out"
	qemu-img convert -q -f raw -O "$fmt" ${opts:+-o "$opts"} "$orig" "$img"
	sync_stats -O raw "$img" "$out/" 2> "$TMP/err" ||
		fail "$name: exit $?: $(cat "$TMP/err")"
	target=$out/${name%.*}.raw
	[ "$(ls "$out")" = "${name%.*}.raw" ] || fail "$name: $(ls "$out")"
	same "$orig" "$target"
	check_synced "$img" "$fmt" "$target"
	[ "$(stat_of written_bytes)" -eq $((4 * M + 64 * K)) ] ||
		fail "$name: first run wrote $(stat_of written_bytes)"
	no_daemon_dir "$name"
	if [ "$writable" = yes ]; then
		qemu-io -f "$fmt" -c "write -P 5 1M 64k" -c "write -z 40M 1M" \
			"$img" > /dev/null
		sync_stats -O raw "$img" "$out/"
		w=$(stat_of written_bytes)
		[ "$w" -ge $((64 * K)) ] && [ "$w" -le $((72 * K)) ] ||
			fail "$name: incremental run wrote $w bytes"
		[ "$(stat_of punched_bytes)" -ge "$M" ] ||
			fail "$name: punched $(stat_of punched_bytes)"
		check_synced "$img" "$fmt" "$target"
		cmp -s "$orig" "$target" && fail "$name: change not synced"
	fi
	sync_stats -O raw "$img" "$out/"
	[ "$(stat_of written_bytes)" -eq 0 ] ||
		fail "$name: unchanged run wrote $(stat_of written_bytes)"
	check_synced "$img" "$fmt" "$target"
	no_daemon_dir "$name"
done <<'EOF'
sparse.vmdk vmdk subformat=monolithicSparse yes
stream.vmdk vmdk subformat=streamOptimized no
dyn.vdi vdi static=off yes
static.vdi vdi static=on yes
dyn.vhdx vhdx subformat=dynamic yes
fixed.vhdx vhdx subformat=fixed yes
dyn.vhd vpc subformat=dynamic,force_size=on yes
fixed.vhd vpc subformat=fixed,force_size=on yes
disk.qed qed cluster_size=65536 yes
EOF

# -f names the format when the name does not.
cp "$TMP/disk.qed" "$TMP/disk-copy"
mkdir "$TMP/outf"
vs -f qed -O raw "$TMP/disk-copy" "$TMP/outf/" || fail "-f qed: exit $?"
check_synced "$TMP/disk.qed" qed "$TMP/outf/disk-copy.raw"

# Only the guest view: without -O raw, one line naming -O raw.
mkdir "$TMP/none"
must_fail 2 "^vmsync: $TMP/sparse.vmdk: a vmdk image can only be synced as its guest disk; add -O raw\$" \
	vs "$TMP/sparse.vmdk" "$TMP/none/"
must_fail 2 "^vmsync: $TMP/dyn.vhd: a vpc image can only be synced" \
	vs -O qcow2 "$TMP/dyn.vhd" "$TMP/none/"

# A damaged image (its header kept, the rest cut) and garbage: one line
# naming the image and what qemu said, exit 2, nothing written.
cp "$TMP/dyn.vdi" "$TMP/cut.vdi"
printf '\377\377\377\377\377\377\377\377' |
	dd of="$TMP/cut.vdi" bs=1 seek=68 conv=notrunc status=none
must_fail 2 "^vmsync: $TMP/cut.vdi: .*qemu-storage-daemon: .*" \
	vs -O raw "$TMP/cut.vdi" "$TMP/none/"
head -c 1000000 "$TMP/dyn.vhdx" > "$TMP/cut.vhdx"
must_fail 2 "^vmsync: $TMP/cut.vhdx: .*qemu-storage-daemon: " \
	vs -O raw "$TMP/cut.vhdx" "$TMP/none/"
head -c 1M /dev/urandom > "$TMP/junk.vhdx"
must_fail 2 "^vmsync: $TMP/junk.vhdx: named as a vhdx image, but it is not one" \
	vs -O raw "$TMP/junk.vhdx" "$TMP/none/"
# Backing files: 205-foreign-backing.
# qemu-storage-daemon missing, and qemu-nbd too.
VMSYNC_QSD=$TMP/nosuch/qemu-storage-daemon VMSYNC_QEMU_NBD=$TMP/nosuch/qemu-nbd \
	must_fail 2 "^vmsync: $TMP/dyn.vdi: .*$TMP/nosuch/qemu-storage-daemon: cannot run: No such file or directory\$" \
	vs -O raw "$TMP/dyn.vdi" "$TMP/none/"
[ -z "$(ls -A "$TMP/none")" ] || fail "refused runs wrote $(ls -A "$TMP/none")"
no_daemon_dir "errors"

# The daemon killed mid-run: stop it (reads wait), then kill it.
big=$TMP/big.qed
"$HOLES" make "$TMP/big.img" 256M 0:128M:9
qemu-img convert -q -f raw -O qed "$TMP/big.img" "$big"
rm "$TMP/big.img"
mkdir "$TMP/outk"
qsd_pid() {	# the daemon's pid, from vmsync's debug line
	local p
	for _ in $(seq 1 2000); do
		p=$(sed -n 's/^vmsync: debug: qemu-storage-daemon pid //p' \
			"$TMP/err")
		[ -n "$p" ] && { echo "$p"; return 0; }
		sleep 0.005
	done
	fail "no daemon pid: $(cat "$TMP/err")"
}
VMSYNC_DEBUG_QSD_PID=1 "$VMSYNC" -O raw "$big" "$TMP/outk/" 2> "$TMP/err" &
pid=$!
q=$(qsd_pid)
kill -STOP "$q"
sleep 0.2
kill -KILL "$q"
rc=0
wait "$pid" || rc=$?
[ "$rc" -eq 2 ] || fail "daemon killed: exit $rc: $(cat "$TMP/err")"
grep -v "^vmsync: debug:" "$TMP/err" > "$TMP/err2" || true
[ "$(wc -l < "$TMP/err2")" -eq 1 ] &&
	grep -q "^vmsync: $big: .*qemu-storage-daemon: was killed" "$TMP/err2" ||
	fail "daemon killed: not one line: $(cat "$TMP/err")"
gone "$q" || fail "daemon killed: still there"
no_daemon_dir "daemon killed"

# SIGTERM to vmsync mid-run (slowed by --bwlimit): the daemon is reaped.
VMSYNC_DEBUG_QSD_PID=1 "$VMSYNC" --bwlimit=20M -O raw "$big" "$TMP/outk/" \
	2> "$TMP/err" &
pid=$!
q=$(qsd_pid)
sleep 0.5
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" -eq 4 ] || fail "SIGTERM: exit $rc: $(cat "$TMP/err")"
gone "$q" || fail "SIGTERM: the daemon is still there"
no_daemon_dir "SIGTERM"

# SIGKILL to vmsync: the daemon dies with it (PR_SET_PDEATHSIG).
VMSYNC_DEBUG_QSD_PID=1 "$VMSYNC" --bwlimit=20M -O raw "$big" "$TMP/outk/" \
	2> "$TMP/err" &
pid=$!
q=$(qsd_pid)
sleep 0.5
kill -KILL "$pid"
wait "$pid" || true
for _ in $(seq 1 200); do gone "$q" && break; sleep 0.01; done
gone "$q" || fail "SIGKILL: the daemon outlived vmsync"
no_daemon_dir "SIGKILL"
# And the next run completes.
vs -O raw "$big" "$TMP/outk/" || fail "after the kills: exit $?"
check_synced "$big" qed "$TMP/outk/big.raw"
