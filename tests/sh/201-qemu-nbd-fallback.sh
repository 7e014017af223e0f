#!/usr/bin/env bash
# Proves: where qemu-storage-daemon is missing (VMSYNC_QSD names no
# program) but qemu-nbd is there, vmdk (a split descriptor and a sparse
# file), vhdx, vdi and qed images are read through qemu-nbd (read-only,
# socket activation on a private socket): -v says so, the target is the
# guest disk (qemu-img compare, cmp, the guest's holes), an incremental run
# after qemu-io writes writes only the change, an unchanged run writes
# nothing.  A damaged image: one line naming the image and what qemu-nbd
# said, exit 2.  With neither program (VMSYNC_QEMU_NBD names none): one
# line naming the image and the missing daemon, exit 2.  No qemu-nbd is
# left behind, after a normal run nor after vmsync is killed (SIGKILL),
# and no socket directory either.
. "$VMSYNC_TOP/tests/functions.sh"
requires qemu-img qemu-io qemu-nbd jq

M=1048576
K=1024
export TMPDIR=$TMP/tmpd
mkdir "$TMPDIR"
export VMSYNC_QSD=$TMP/nosuch/qemu-storage-daemon
orig=$TMP/orig.img
"$HOLES" make "$orig" 64M 0:1M:1 8M:64K:2 40M:2M:3 63M:1M:4

gone() {
	[ ! -e "/proc/$1" ] || grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat"
}
nbd_pids() {
	sed -n 's/^vmsync: debug: qemu-nbd pid //p' "$TMP/err"
}
no_server_left() {
	[ -z "$(ls -A "$TMPDIR")" ] || fail "$1: left $(ls -A "$TMPDIR")"
	for q in $(nbd_pids); do
		gone "$q" || fail "$1: qemu-nbd $q left running"
	done
}
run() {
	STATS=$(VMSYNC_DEBUG_QSD_PID=1 "$VMSYNC" --json --no-progress "$@" \
		2> "$TMP/err") || fail "vmsync $*: exit $?: $(cat "$TMP/err")"
	[ -n "$(nbd_pids)" ] || fail "vmsync $*: no qemu-nbd: $(cat "$TMP/err")"
}
check_synced() {	# IMAGE FMT TARGET
	local exp=$TMP/expected.raw
	rm -f "$exp"
	qemu-img convert -f "$2" -O raw "$1" "$exp"
	same "$exp" "$3"
	[ "$(data_ranges "$3")" = "$(data_ranges "$exp")" ] ||
		fail "$1: target data $(data_ranges "$3"), guest data" \
		    "$(data_ranges "$exp")"
}

# name FMT OPTIONS
while read -r name fmt opts; do
	img=$TMP/$name
	out=$TMP/out-$name
	mkdir "$out"
	qemu-img convert -q -f raw -O "$fmt" -o "$opts" "$orig" "$img"
	target=$out/${name%.*}.raw
	"$VMSYNC" -v -O raw "$img" "$out/" 2> "$TMP/v" ||
		fail "$name: exit $?: $(cat "$TMP/v")"
	grep -q "^vmsync: $img: $fmt image read through qemu-nbd" "$TMP/v" ||
		fail "$name: not read through qemu-nbd: $(cat "$TMP/v")"
	check_synced "$img" "$fmt" "$target"
	qemu-io -f "$fmt" -c "write -P 5 1M 64k" -c "write -z 40M 1M" \
		"$img" > /dev/null
	run -O raw "$img" "$out/"
	w=$(stat_of written_bytes)
	[ "$w" -ge $((64 * K)) ] && [ "$w" -le $((72 * K)) ] ||
		fail "$name: incremental run wrote $w bytes"
	[ "$(stat_of punched_bytes)" -ge "$M" ] ||
		fail "$name: punched $(stat_of punched_bytes)"
	check_synced "$img" "$fmt" "$target"
	run -O raw "$img" "$out/"
	[ "$(stat_of written_bytes)" -eq 0 ] ||
		fail "$name: unchanged run wrote $(stat_of written_bytes)"
	no_server_left "$name"
done <<'EOF'
split.vmdk vmdk subformat=twoGbMaxExtentSparse
sparse.vmdk vmdk subformat=monolithicSparse
dyn.vhdx vhdx subformat=dynamic
dyn.vdi vdi static=off
disk.qed qed cluster_size=65536
EOF
ls "$TMP"/split-s001.vmdk > /dev/null || fail "no split extents: $(ls "$TMP")"

# A damaged image: what qemu-nbd said, in one line.
mkdir "$TMP/none"
cp "$TMP/dyn.vdi" "$TMP/cut.vdi"
printf '\377\377\377\377\377\377\377\377' |
	dd of="$TMP/cut.vdi" bs=1 seek=68 conv=notrunc status=none
must_fail 2 "^vmsync: $TMP/cut.vdi: qemu-nbd cannot open it: .*qemu-nbd: .*VDI" \
	vs -O raw "$TMP/cut.vdi" "$TMP/none/"
# Neither program.
VMSYNC_QEMU_NBD=$TMP/nosuch/qemu-nbd \
	must_fail 2 "^vmsync: $TMP/dyn.vdi: .*$TMP/nosuch/qemu-storage-daemon: cannot run: No such file or directory\$" \
	vs -O raw "$TMP/dyn.vdi" "$TMP/none/"
[ -z "$(ls -A "$TMP/none")" ] || fail "refused runs wrote $(ls -A "$TMP/none")"
[ -z "$(ls -A "$TMPDIR")" ] || fail "errors: left $(ls -A "$TMPDIR")"

# SIGKILL to vmsync mid-run: qemu-nbd dies with it.
"$HOLES" make "$TMP/big.img" 256M 0:128M:9
qemu-img convert -q -f raw -O qed "$TMP/big.img" "$TMP/big.qed"
rm "$TMP/big.img"
mkdir "$TMP/outk"
VMSYNC_DEBUG_QSD_PID=1 "$VMSYNC" --bwlimit=20M -O raw "$TMP/big.qed" \
	"$TMP/outk/" 2> "$TMP/err" &
pid=$!
for _ in $(seq 1 2000); do
	[ -n "$(nbd_pids)" ] && break
	sleep 0.005
done
q=$(nbd_pids)
[ -n "$q" ] || fail "no qemu-nbd pid: $(cat "$TMP/err")"
sleep 0.5
kill -KILL "$pid"
wait "$pid" || true
for _ in $(seq 1 200); do gone "$q" && break; sleep 0.01; done
gone "$q" || fail "SIGKILL: qemu-nbd outlived vmsync"
run -O raw "$TMP/big.qed" "$TMP/outk/"
check_synced "$TMP/big.qed" qed "$TMP/outk/big.raw"
no_server_left "after SIGKILL"
