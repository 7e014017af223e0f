#!/usr/bin/env bash
# Proves: qed and vmdk images with backing files are synced with -O raw as
# qemu reads the whole chain: a 3-level qed chain (relative names), a qed
# over a raw base (-F raw), a sparse vmdk over a sparse vmdk, a split vmdk
# descriptor over a split vmdk descriptor (parentFileNameHint; the extent
# files of both opened by vmsync): each target equals qemu-img convert of
# the top (qemu-img compare, cmp) and an incremental run after a qemu-io
# write writes only the change.  The backing files follow the
# --backing-dir rule: one in another directory is refused (exit 2, one line
# naming the image and the name), read with --backing-dir.  One line,
# exit 2, nothing written, for: a missing backing file, a chain that loops,
# a chain deeper than 64 backing files, a qed backing file whose format is
# neither recorded nor said by its name (qemu would guess it).  No daemon
# is left behind.
. "$VMSYNC_TOP/tests/functions.sh"
requires qemu-img qemu-io qemu-storage-daemon jq

K=1024
export TMPDIR=$TMP/tmpd
mkdir "$TMPDIR"
vm=$TMP/vm
other=$TMP/other
none=$TMP/none
mkdir "$vm" "$other" "$none"

run() {
	STATS=$(VMSYNC_DEBUG_QSD_PID=1 "$VMSYNC" --json --no-progress "$@" \
		2> "$TMP/err") || fail "vmsync $*: exit $?: $(cat "$TMP/err")"
}
check_synced() {	# IMAGE FMT TARGET
	rm -f "$TMP/exp.raw"
	qemu-img convert -f "$2" -O raw "$1" "$TMP/exp.raw"
	same "$TMP/exp.raw" "$3"
	[ "$(data_ranges "$3")" = "$(data_ranges "$TMP/exp.raw")" ] ||
		fail "$1: target data $(data_ranges "$3"), guest data" \
		    "$(data_ranges "$TMP/exp.raw")"
}
no_daemon_left() {
	[ -z "$(ls -A "$TMPDIR")" ] || fail "$1: left $(ls -A "$TMPDIR")"
	for q in $(sed -n 's/^vmsync: debug: qemu-storage-daemon pid //p' \
	    "$TMP/err"); do
		[ ! -e "/proc/$q" ] ||
			grep -q '^[0-9]* ([^)]*) Z' "/proc/$q/stat" ||
			fail "$1: qemu-storage-daemon $q left running"
	done
}
# synced IMAGE FMT: first run, a write to the top, an incremental run.
synced() {
	local img=$1 fmt=$2 name out
	name=$(basename "${img%.*}")
	out=$TMP/out-$name
	mkdir -p "$out"
	run -O raw "$img" "$out/"
	check_synced "$img" "$fmt" "$out/$name.raw"
	qemu-io -f "$fmt" -c "write -P 9 3M 64k" "$img" > /dev/null
	run -O raw "$img" "$out/"
	w=$(stat_of written_bytes)
	[ "$w" -ge $((64 * K)) ] && [ "$w" -le $((72 * K)) ] ||
		fail "$name: incremental run wrote $w bytes"
	check_synced "$img" "$fmt" "$out/$name.raw"
	no_daemon_left "$name"
}

# qed: base <- mid <- top, each writing its own range.
qemu-img create -q -f qed "$vm/base.qed" 16M
qemu-io -f qed -c "write -P 1 0 4M" "$vm/base.qed" > /dev/null
qemu-img create -q -f qed -b base.qed -F qed "$vm/mid.qed"
qemu-io -f qed -c "write -P 2 1M 1M" "$vm/mid.qed" > /dev/null
qemu-img create -q -f qed -b mid.qed -F qed "$vm/top.qed"
qemu-io -f qed -c "write -P 3 2M 64k" -c "write -z 3584k 64k" "$vm/top.qed" \
	> /dev/null
synced "$vm/top.qed" qed
# qed over raw: the format recorded (no probing).
qemu-img create -q -f raw "$vm/base.raw" 16M
qemu-io -f raw -c "write -P 4 0 2M" "$vm/base.raw" > /dev/null
qemu-img create -q -f qed -b base.raw -F raw "$vm/onraw.qed"
synced "$vm/onraw.qed" qed
# vmdk: sparse over sparse, split descriptor over split descriptor.
qemu-img create -q -f vmdk "$vm/vbase.vmdk" 16M
qemu-io -f vmdk -c "write -P 5 0 4M" "$vm/vbase.vmdk" > /dev/null
qemu-img create -q -f vmdk -b vbase.vmdk -F vmdk "$vm/vtop.vmdk"
qemu-io -f vmdk -c "write -P 6 1M 1M" "$vm/vtop.vmdk" > /dev/null
synced "$vm/vtop.vmdk" vmdk
qemu-img create -q -f vmdk -o subformat=twoGbMaxExtentSparse \
	"$vm/sbase.vmdk" 16M
qemu-io -f vmdk -c "write -P 7 0 4M" "$vm/sbase.vmdk" > /dev/null
qemu-img create -q -f vmdk -o subformat=twoGbMaxExtentSparse \
	-b sbase.vmdk -F vmdk "$vm/stop.vmdk"
grep -q '^parentFileNameHint="sbase.vmdk"' "$vm/stop.vmdk" ||
	fail "qemu-img made no descriptor with a parent"
qemu-io -f vmdk -c "write -P 8 1M 64k" "$vm/stop.vmdk" > /dev/null
synced "$vm/stop.vmdk" vmdk

# A backing file in another directory: refused, then read with
# --backing-dir.
cp "$vm/base.qed" "$other/obase.qed"
qemu-img create -q -f qed -b ../other/obase.qed -F qed "$vm/away.qed"
must_fail 2 "^vmsync: $vm/away.qed: backing file '\\.\\./other/obase\\.qed' refused: not in the image's directory nor beneath a --backing-dir\$" \
	vs -O raw "$vm/away.qed" "$none/"
mkdir "$TMP/outa"
vs -q -O raw --backing-dir "$other" "$vm/away.qed" "$TMP/outa/" ||
	fail "--backing-dir: exit $?"
check_synced "$vm/away.qed" qed "$TMP/outa/away.raw"
# The same for a vmdk.
cp "$vm/vbase.vmdk" "$other/ovbase.vmdk"
qemu-img create -q -f vmdk -b "$other/ovbase.vmdk" -F vmdk "$vm/vaway.vmdk"
must_fail 2 "^vmsync: $vm/vaway.vmdk: backing file '$other/ovbase\\.vmdk' refused: " \
	vs -O raw "$vm/vaway.vmdk" "$none/"
vs -q -O raw --backing-dir "$other" "$vm/vaway.vmdk" "$TMP/outa/" ||
	fail "--backing-dir, vmdk: exit $?"
check_synced "$vm/vaway.vmdk" vmdk "$TMP/outa/vaway.raw"

# Missing, looping, too deep, unknown format.
qemu-img create -q -f qed -u -b gone.qed -F qed "$vm/orphan.qed" 16M
must_fail 2 "^vmsync: $vm/orphan.qed: backing file 'gone\\.qed': No such file or directory\$" \
	vs -O raw "$vm/orphan.qed" "$none/"
qemu-img create -q -f qed -u -b loop2.qed -F qed "$vm/loop1.qed" 16M
qemu-img create -q -f qed -u -b loop1.qed -F qed "$vm/loop2.qed" 16M
must_fail 2 "^vmsync: .*/loop[12]\\.qed: backing file 'loop[12]\\.qed': the backing chain loops\$" \
	vs -O raw "$vm/loop1.qed" "$none/"
mkdir "$TMP/deep"
qemu-img create -q -f qed "$TMP/deep/l0.qed" 1M
for i in $(seq 1 65); do
	qemu-img create -q -f qed -u -b "l$((i - 1)).qed" -F qed \
		"$TMP/deep/l$i.qed" 1M
done
must_fail 2 "^vmsync: $TMP/deep/l65.qed: backing chain deeper than 64 images\$" \
	vs -O raw "$TMP/deep/l65.qed" "$none/"
vs -q -O raw "$TMP/deep/l64.qed" "$TMP/outa/" || fail "64 backing files: exit $?"
cp "$vm/base.qed" "$vm/base.img"
qemu-img create -q -f qed -u -b base.img -F qed "$vm/guess.qed" 16M
must_fail 2 "^vmsync: $vm/guess.qed: backing file 'base\\.img': no format recorded, and its name says neither qed nor vmdk" \
	vs -O raw "$vm/guess.qed" "$none/"
[ -z "$(ls -A "$none")" ] || fail "refused runs wrote $(ls -A "$none")"
[ -z "$(ls -A "$TMPDIR")" ] || fail "refusals left $(ls -A "$TMPDIR")"
