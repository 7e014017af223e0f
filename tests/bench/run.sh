#!/bin/bash
# make bench: vmsync against the tools people use today, on a guest that
# lives a few days.  Needs root (loop devices, btrfs, FUSE).
#
# Workload: a source and a target btrfs, each on a loop device.  A guest
# disk of BENCH_SIZE (raw, and qcow2 exported by qemu-storage-daemon as a
# FUSE file) holds a real ext4 attached with losetup; tests/bench/workload
# fills it on day 0 and changes it on each later day (overwrites, new and
# deleted files), then the guest runs fstrim.  Every tool syncs each day
# into its own target subvolume, caches dropped before each run; a
# read-only snapshot after each run lets `btrfs filesystem du` tell the new
# data of the next.  Then vmsync alone on sparse images of BENCH_SCALES.
# vmsync runs twice: as it runs by default on btrfs (a reflink clone of
# the image, change detection against the last one; its state directory is
# kept outside the images subvolume, so btrfs send does not carry it), and
# as vmsync-full, which reads every allocated source byte
# (--source-snapshot=never).
# Pushes go through a real sshd on 127.0.0.1 (its own keys and config in
# the scratch directory, cipher chacha20-poly1305) into the same target
# btrfs: vmsync-push and vmsync-push-full as above, rsync-ssh, and
# btrfs-send-ssh (send | ssh btrfs receive).  fleet: BENCH_FLEET clients
# at once, each pushing its own reflink copy of the image with --snapshot
# into one backup subvolume.  foreign: the guest of day 0 converted with
# qemu-img convert to each of BENCH_FOREIGN, then a first sync of each,
# vmsync -O raw against nbdcopy from qemu-nbd, into a raw file on the target
# btrfs.  archive: the same guest exported by vmsync into a .tar.zst
# (sparse pax), against vmsync's first sync of it into a raw file, both on
# the target btrfs, and zstd alone compressing the same pax stream from
# memory into /dev/null (the compressor's own cost on this machine).  large: a sparse raw image of the first size of
# BENCH_LARGE holding the second in 1 MiB pieces, of which the third is
# then overwritten: vmsync's incremental run with change detection against
# btrfs send -p | btrfs receive, both local.
#
# Knobs: BENCH_SIZE (8G), BENCH_SEED (1), BENCH_DAYS (2), BENCH_FORMATS
# ("raw qcow2"), BENCH_SCALES ("1G 8G 64G 1T"; "" for none), BENCH_TOOLS
# (a regex of tools to run), BENCH_FLEET (8: clients of the fleet row),
# BENCH_FOREIGN ("vmdk vhdx"; "" for none; run when BENCH_TOOLS matches
# "foreign"), BENCH_LARGE ("1T 12G 1G": image size, data, change; "" for
# none; run when BENCH_TOOLS matches "large"), BENCH_REPEAT (1: how many
# times each first sync, each readalloc and the large change run, the
# tools taking turns, the row showing the run of median time), BENCH_DIR
# (scratch directory, default under /var/tmp), BENCH_OUT (results
# directory, default tests/bench/results).
# Timings include a syncfs of the target: every tool's data is on disk.
# Only runs that start from nothing repeat: an incremental run cannot be
# put back (a restored target is a new file to vmsync's index, which then
# reads everything).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=${BUILD:-build}
VMSYNC=$ROOT/$BUILD/vmsync
BENCH_BIN=$ROOT/$BUILD/tests/bench
SIZE=${BENCH_SIZE:-8G}
SEED=${BENCH_SEED:-1}
DAYS=${BENCH_DAYS:-2}
FORMATS=${BENCH_FORMATS-raw qcow2}
SCALES=${BENCH_SCALES-1G 8G 64G 1T}
TOOLS_RE=${BENCH_TOOLS:-.}
REPEAT=${BENCH_REPEAT:-1}
FLEET=${BENCH_FLEET:-8}
FOREIGN=${BENCH_FOREIGN-vmdk vhdx}
LARGE=${BENCH_LARGE-1T 12G 1G}
OUT=${BENCH_OUT:-$ROOT/tests/bench/results}

die() { echo "bench: $*" >&2; exit 1; }
log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

[ "$(id -u)" -eq 0 ] || die "needs root (loop devices, mounts, drop_caches)"
for c in qemu-img qemu-storage-daemon nbdcopy rsync btrfs mkfs.ext4 \
    fstrim losetup jq /usr/bin/time; do
	command -v "$c" >/dev/null || die "$c is missing (run 'make bench' as root)"
done
[ -x "$VMSYNC" ] || die "$VMSYNC is missing"
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPEAT must be a positive number"
[[ $FLEET =~ ^[1-9][0-9]*$ ]] || die "BENCH_FLEET must be a positive number"
# The tools that push through sshd; it only starts if one of them runs.
SSH_TOOLS="vmsync-push btrfs-send-ssh vmsync-push-full rsync-ssh fleet"
need_sshd=
for t in $SSH_TOOLS; do [[ $t =~ $TOOLS_RE ]] && need_sshd=1; done
if [ -n "$need_sshd" ]; then
	for c in ssh ssh-keygen /usr/sbin/sshd; do
		command -v "$c" >/dev/null ||
			die "$c is missing (openssh-server, openssh-client)"
	done
fi

bytes() {	# 8G -> 8589934592
	numfmt --from=iec "$1"
}
VSIZE=$(bytes "$SIZE")
DATA=$((VSIZE * 3 / 8))		# day 0 fills about 3/8 of the disk

W=$(mktemp -d "${BENCH_DIR:-/var/tmp}/vmsync-bench.XXXXXX")
S=$W/src			# source btrfs
D=$W/dst			# target btrfs
G=$W/guest			# guest ext4 mount point
mkdir -p "$S" "$D" "$G" "$OUT"
ROWS=$W/rows.tsv
SCALE_ROWS=$W/scale.tsv
FLEET_ROWS=$W/fleet.tsv
FOREIGN_ROWS=$W/foreign.tsv
: > "$FOREIGN_ROWS"
ARCHIVE_ROWS=$W/archive.tsv
: > "$ARCHIVE_ROWS"
LARGE_ROWS=$W/large.tsv
: > "$LARGE_ROWS"
: > "$ROWS"
: > "$SCALE_ROWS"
: > "$FLEET_ROWS"
K=$W/ssh			# sshd's keys, config and pid
qsd_pid=
loops=()

cleanup() {
	set +e
	[ -s "$K/sshd.pid" ] && kill "$(cat "$K/sshd.pid")"
	mountpoint -q "$G" && umount "$G"
	stop_export
	for m in "$S" "$D"; do mountpoint -q "$m" && umount "$m"; done
	for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null; done
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# mkfs_btrfs IMG MNT SIZE: a btrfs on a loop device, named in $dev.  The
# loop device uses direct I/O, so its counters and timings are the disk's
# and not a second page cache's.
mkfs_btrfs() {
	truncate -s "$3" "$1"
	mkfs.btrfs -q -f "$1" >/dev/null
	dev=$(losetup -f --show --direct-io=on "$1")
	loops+=("$dev")
	mount -o noatime "$dev" "$2"
}
# The large row's image and its changes, or nothing.
LARGE_DATA=0
[ -z "$LARGE" ] || LARGE_DATA=$(($(bytes "$(echo $LARGE | cut -d' ' -f2)") + $(bytes "$(echo $LARGE | cut -d' ' -f3)")))
mkfs_btrfs "$W/src.img" "$S" $((VSIZE * 2 + (16 << 30) + LARGE_DATA))
SRCDEV=$dev
mkfs_btrfs "$W/dst.img" "$D" $((VSIZE * 8 + (64 << 30) + 2 * LARGE_DATA))
DSTDEV=$dev
btrfs subvolume create "$S/images" >/dev/null
mkdir -p "$S/state"

# Device counters: sectors read and written (/sys/block/loopN/stat).
dev_stat() {	# DEV FIELD (3: sectors read, 7: sectors written)
	awk -v f="$2" '{ printf "%.0f\n", $f * 512 }' "/sys/block/${1#/dev/}/stat"
}
drop_caches() {
	sync
	echo 3 > /proc/sys/vm/drop_caches
}
alloc_of() { stat -c '%b %B' "$1" | awk '{ print $1 * $2 }'; }

# ---- sshd ------------------------------------------------------------

# start_sshd: an sshd of our own on 127.0.0.1 that lets root in with a key
# made here; sets $SSH, the client command line.  The cipher is fixed so
# that runs on different machines pay the same for encryption.  bash, run
# by sshd, reads root's ~/.bashrc unless SHLVL says it is not the top-level
# shell: what it does there (a pyenv init costs 2 s a login, 36 s for 8 at
# once) is not what the bench measures.
SSH=
start_sshd() {
	local port i
	mkdir -p "$K" /run/sshd
	ssh-keygen -q -t ed25519 -N '' -f "$K/hostkey"
	ssh-keygen -q -t ed25519 -N '' -f "$K/userkey"
	cp "$K/userkey.pub" "$K/authorized_keys"
	# A random port may be taken: try a few.
	for i in $(seq 10); do
		port=$((20000 + RANDOM % 20000))
		cat > "$K/sshd_config" <<-EOS
		Port $port
		ListenAddress 127.0.0.1
		HostKey $K/hostkey
		AuthorizedKeysFile $K/authorized_keys
		PidFile $K/sshd.pid
		StrictModes no
		UsePAM no
		PasswordAuthentication no
		KbdInteractiveAuthentication no
		PermitRootLogin prohibit-password
		Ciphers chacha20-poly1305@openssh.com
		MaxStartups 100
		SetEnv SHLVL=1
		EOS
		/usr/sbin/sshd -f "$K/sshd_config" -E "$K/sshd.log" && break
		port=
	done
	[ -n "$port" ] || die "sshd did not start: $(cat "$K/sshd.log")"
	# -F none: the machine's ssh_config must not change what is measured.
	SSH="ssh -F none -p $port -i $K/userkey -c chacha20-poly1305@openssh.com"
	SSH="$SSH -o Compression=no -o BatchMode=yes -o LogLevel=ERROR"
	SSH="$SSH -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
	for i in $(seq 50); do
		$SSH root@127.0.0.1 true 2>/dev/null && return 0
		sleep 0.1
	done
	die "cannot ssh to root@127.0.0.1:$port: $(cat "$K/sshd.log")"
}
[ -z "$need_sshd" ] || start_sshd

# ---- the guest -------------------------------------------------------

export_file=$W/export		# the FUSE export of a qcow2 image
: > "$export_file"

# start_export IMAGE: qemu-storage-daemon exports the qcow2 IMAGE on
# $export_file, writable, with discard passed down to the image file.
start_export() {
	local i
	qemu-storage-daemon \
		--blockdev "driver=file,filename=$1,node-name=f,discard=unmap" \
		--blockdev "driver=qcow2,file=f,node-name=q,discard=unmap" \
		--export "type=fuse,id=e,node-name=q,mountpoint=$export_file,writable=on" \
		> "$W/qsd.log" 2>&1 &
	qsd_pid=$!
	for i in $(seq 200); do
		awk -v f="$export_file" '$2 == f { m = 1 } END { exit !m }' \
			/proc/mounts && return 0
		kill -0 "$qsd_pid" 2>/dev/null || break
		sleep 0.05
	done
	cat "$W/qsd.log" >&2
	die "qemu-storage-daemon did not export $1"
}
stop_export() {
	[ -n "$qsd_pid" ] || return 0
	kill "$qsd_pid" 2>/dev/null
	wait "$qsd_pid" 2>/dev/null || true
	qsd_pid=
	umount -l "$export_file" 2>/dev/null || true
}

# guest_day FMT DAY: run one day of the guest on the image.
guest_day() {
	local fmt=$1 day=$2 img=$S/images/vm.$1 disk dev
	disk=$img
	if [ "$fmt" = qcow2 ]; then
		start_export "$img"
		disk=$export_file
	fi
	dev=$(losetup -f --show "$disk")
	[ "$day" -eq 0 ] && mkfs.ext4 -q -F -E lazy_itable_init=0 "$dev"
	mount -o noatime "$dev" "$G"
	"$BENCH_BIN/workload" "$G" "$day" "$SEED" "$DATA" > "$W/guest.out"
	fstrim "$G"
	umount "$G"
	losetup -d "$dev"
	while [ -n "$(losetup -j "$disk")" ]; do sleep 0.05; done
	[ "$fmt" = qcow2 ] && stop_export
	sync
	btrfs subvolume snapshot -r "$S/images" "$S/images@day$day" >/dev/null
	log "$fmt day $day: $(cat "$W/guest.out")"
}

# guest_change FMT DAY: "changed trimmed" bytes of the guest disk since the
# day before, and of the image file itself.
guest_change() {
	local fmt=$1 day=$2 a b
	a=$S/images@day$(($2 - 1))/vm.$fmt
	b=$S/images@day$day/vm.$fmt
	if [ "$fmt" = raw ]; then
		"$BENCH_BIN/imgdiff" change "$a" "$b" | awk '{ print $2, $4 }'
		return
	fi
	qemu-img convert -f qcow2 -O raw "$a" "$W/old.raw"
	qemu-img convert -f qcow2 -O raw "$b" "$W/new.raw"
	"$BENCH_BIN/imgdiff" change "$W/old.raw" "$W/new.raw" | awk '{ print $2, $4 }'
	rm -f "$W/old.raw" "$W/new.raw"
}

# ---- the tools -------------------------------------------------------

# The tools, in table order.  Most make their own day-0 backup, measured
# as a first sync; the in-place ones start from a snapshot of another
# tool's day-0 backup (tool_base).  Each vmsync mode runs right before
# what its target compares it with (btrfs send, reading the allocated
# bytes once), so a slow spell of the machine touches both alike; the
# pushes likewise around btrfs-send-ssh.  fleet is not a tool of this list
# (measure_fleet).
TOOLS="vmsync btrfs-send vmsync-full readalloc vmsync-O-raw rsync-inplace
       rsync-inplace-sparse rsync-sparse qemu-img-convert qemu-img-convert-n
       nbdcopy cp vmsync-push btrfs-send-ssh vmsync-push-full rsync-ssh"

tool_applies() {	# TOOL FMT
	[[ $1 =~ $TOOLS_RE ]] || return 1
	[ "$1" != vmsync-O-raw ] || [ "$2" = qcow2 ]
}
tool_base() {		# TOOL: whose day-0 backup it starts from, if not its own
	case $1 in
	rsync-inplace|rsync-inplace-sparse) echo cp ;;
	qemu-img-convert-n) echo qemu-img-convert ;;
	esac
}
# tool_target TOOL FMT: the file the tool's backup is
tool_target() {
	case $1 in
	vmsync|vmsync-full|vmsync-push*|rsync*|cp) echo "$D/$1/vm.$2" ;;
	btrfs-send*) echo "$D/$1/images@day$day/vm.$2" ;;
	readalloc) echo "" ;;
	*) echo "$D/$1/vm.raw" ;;
	esac
}
# tool_cmd TOOL FMT DAY SRC TARGET: the command line
tool_cmd() {
	local t=$1 fmt=$2 day=$3 src=$4 dst=$5
	case $t in
	vmsync) echo "$VMSYNC -q --no-progress --state-dir=$S/state/$t $src $dst" ;;
	vmsync-full)
		echo "$VMSYNC -q --no-progress --source-snapshot=never $src $dst" ;;
	vmsync-O-raw)
		echo "$VMSYNC -q --no-progress --state-dir=$S/state/$t -O raw $src $dst" ;;
	rsync-inplace) echo "rsync -a --inplace --no-whole-file $src $dst" ;;
	rsync-inplace-sparse)
		echo "rsync -aI --inplace --sparse --no-whole-file $src $dst" ;;
	rsync-sparse) echo "rsync -a --sparse $src $dst" ;;
	qemu-img-convert) echo "qemu-img convert -f $fmt -O raw $src $dst" ;;
	qemu-img-convert-n)
		echo "qemu-img convert -n -f $fmt -O raw $src $dst" ;;
	nbdcopy)
		if [ "$fmt" = raw ]; then
			echo "nbdcopy $src $dst"
		else
			echo "nbdcopy -- [ qemu-nbd -r -f qcow2 $src ] $dst"
		fi ;;
	cp) echo "cp --sparse=always $src $dst" ;;
	btrfs-send)
		if [ "$day" -eq 0 ]; then
			echo "btrfs send -q $SEND_PROTO $S/images@day0 | btrfs receive -q $D/$t"
		else
			echo "btrfs send -q $SEND_PROTO -p $S/images@day$((day - 1)) $S/images@day$day | btrfs receive -q $D/$t"
		fi ;;
	readalloc) echo "$BENCH_BIN/readalloc $src" ;;
	# The pushes: the same modes and options as their local rows, into
	# the same filesystem, through sshd.
	vmsync-push)
		echo "$(push_cmd) --state-dir=$S/state/$t $src root@127.0.0.1:$D/$t/" ;;
	vmsync-push-full)
		echo "$(push_cmd) --source-snapshot=never $src root@127.0.0.1:$D/$t/" ;;
	rsync-ssh)
		echo "rsync -aI --inplace --sparse -e '$SSH' $src root@127.0.0.1:$dst" ;;
	btrfs-send-ssh)
		if [ "$day" -eq 0 ]; then
			echo "btrfs send -q $SEND_PROTO $S/images@day0 | $SSH root@127.0.0.1 btrfs receive -q $D/$t"
		else
			echo "btrfs send -q $SEND_PROTO -p $S/images@day$((day - 1)) $S/images@day$day | $SSH root@127.0.0.1 btrfs receive -q $D/$t"
		fi ;;
	esac
}
# push_cmd: vmsync pushing through our sshd, running this very build there
push_cmd() {
	echo "$VMSYNC -q --no-progress -e '$SSH' --remote-vmsync $VMSYNC"
}
SEND_PROTO=
btrfs send --help 2>&1 | grep -q -- --proto && SEND_PROTO="--proto 2"

# new_data SUBVOL: bytes in SUBVOL shared with nothing else (the data the
# last run wrote, since an older snapshot holds everything before it).
new_data() {
	btrfs filesystem du -s --raw "$1" | awk 'NR == 2 { print $2 }'
}

# timed WHAT CMD: drop the caches, run CMD and a syncfs of the target;
# sets $tm ("elapsed user sys maxrss_kib") and $io ("source read, target
# read, target written" in bytes, from the loop devices).
timed() {
	local sr0 dr0 dw0
	drop_caches
	sr0=$(dev_stat "$SRCDEV" 3); dr0=$(dev_stat "$DSTDEV" 3)
	dw0=$(dev_stat "$DSTDEV" 7)
	if ! /usr/bin/time -f '%e %U %S %M' -o "$W/time" \
	    bash -c "set -o pipefail; $2 && sync -f $D" > "$W/tool.out" 2>&1; then
		cat "$W/tool.out" >&2
		die "$1 failed: $2"
	fi
	io="$(($(dev_stat "$SRCDEV" 3) - sr0)) $(($(dev_stat "$DSTDEV" 3) - dr0))"
	io="$io $(($(dev_stat "$DSTDEV" 7) - dw0))"
	tm=$(tail -n 1 "$W/time")
}

# fresh_start TOOL: put TOOL's day-0 backup back to nothing.
fresh_start() {
	case $1 in
	btrfs-send*) btrfs subvolume delete -c "$D/$1/images@day0" >/dev/null ;;
	*)	btrfs subvolume delete -c "$D/$1" >/dev/null
		btrfs subvolume create "$D/$1" >/dev/null
		rm -rf "$S/state/$1" ;;
	esac
	btrfs subvolume sync "$D" >/dev/null
}

# first_syncs FMT: the first sync (day 0) of every tool that makes its own
# day-0 backup, BENCH_REPEAT rounds of each tool in turn, so that a slow
# spell of the machine, or the guest's writes still settling on the disk
# under the first tool, weighs on every tool alike.  Each run's "$tm $io"
# goes to $W/reps.TOOL, for measure.
first_syncs() {
	local fmt=$1 t r dst day=0	# tool_target reads $day
	for ((r = 1; r <= REPEAT; r++)); do
		for t in $TOOLS; do
			tool_applies "$t" "$fmt" && [ -z "$(tool_base "$t")" ] ||
				continue
			# readalloc changes nothing; anything else starts again.
			if [ "$r" -gt 1 ] && [ "$t" != readalloc ]; then
				fresh_start "$t"
			fi
			[ "$r" -gt 1 ] || : > "$W/reps.$t"
			dst=$(tool_target "$t" "$fmt")
			timed "$t on $fmt day 0" \
				"$(tool_cmd "$t" "$fmt" 0 "$S/images/vm.$fmt" "$dst")"
			echo "$tm $io" >> "$W/reps.$t"
		done
	done
}

# timed_repeat TOOL FMT DAY CMD: timed, or on day 0 the runs first_syncs
# made; readalloc, which changes nothing, BENCH_REPEAT times on any day.
# $tm and $io are those of the run of median time.
timed_repeat() {
	local n=1 r median
	if [ "$3" -ne 0 ] || [ ! -s "$W/reps.$1" ]; then
		[ "$1" != readalloc ] || n=$REPEAT
		: > "$W/reps.$1"
		for ((r = 1; r <= n; r++)); do
			timed "$1 on $2 day $3" "$4"
			echo "$tm $io" >> "$W/reps.$1"
		done
	fi
	median=$(median_row "$W/reps.$1")
	rm -f "$W/reps.$1"
	tm=$(echo "$median" | cut -d' ' -f1-4)
	io=$(echo "$median" | cut -d' ' -f5-7)
}

# measure FMT DAY TOOL CHANGED: run TOOL for DAY, append one row.
measure() {
	local fmt=$1 day=$2 t=$3 changed=$4 src=$S/images/vm.$1 dst cmd
	local tm io equal=- talloc=- stale=- new=- sub=$D/$3
	dst=$(tool_target "$t" "$fmt")
	cmd=$(tool_cmd "$t" "$fmt" "$day" "$src" "$dst")
	timed_repeat "$t" "$fmt" "$day" "$cmd"
	if [ -n "$dst" ]; then
		local tfmt=raw
		case $dst in *.qcow2) tfmt=qcow2 ;; esac
		equal=yes
		same_content "$fmt" "$src" "$dst" || equal=NO
		talloc=$(alloc_of "$dst")
		if [ "$tfmt" = "$fmt" ]; then
			stale=$("$BENCH_BIN/imgdiff" stale "$src" "$dst" | awk '{ print $2 }')
		elif [ "$fmt" = qcow2 ]; then
			stale=$(guest_stale "$src" "$dst")
		fi
		[[ $t = btrfs-send* ]] && sub=$D/$t/images@day$day
		if [ "$day" -gt 0 ]; then
			new=$(new_data "$sub")
		fi
		if [[ $t != btrfs-send* ]]; then
			btrfs subvolume snapshot -r "$sub" "$sub@day$day" >/dev/null
			if [ "$day" -gt 0 ]; then
				btrfs subvolume delete -c "$sub@day$((day - 1))" \
					>/dev/null
				# The cleaner must not run under the next tool.
				btrfs subvolume sync "$D" >/dev/null
			fi
		fi
	fi
	echo "$fmt $day $t $tm $io $equal $talloc $(alloc_of "$src") $stale" \
		"$new $changed" | tr ' ' '\t' >> "$ROWS"
	log "$fmt day $day $t: $(echo "$tm" | awk '{ print $1 }') s, equal $equal"
}

# same_content FMT SRC DST: the guest disk of SRC (format FMT) reads the
# same as DST (raw, or qcow2 by its name); two raw files must also be
# equal byte for byte, size included, which qemu-img compare lets pass.
same_content() {
	local tfmt=raw
	case $3 in *.qcow2) tfmt=qcow2 ;; esac
	qemu-img compare -q -f "$1" -F "$tfmt" "$2" "$3" || return 1
	[ "$1-$tfmt" != raw-raw ] || cmp -s "$2" "$3"
}

# count_snaps DIR GLOB: entries of DIR named like GLOB
count_snaps() {
	find "$1" -mindepth 1 -maxdepth 1 -name "$2" | wc -l
}

# measure_fleet FMT DAY CHANGED: FLEET clients push at once, each its own
# reflink copy of the image (no space, and change detection still sees
# the unchanged extents), with --snapshot into the one subvolume
# $D/fleet; appends one row to $FLEET_ROWS: the wall time of them all,
# the slowest and the fastest client's own time (far apart when the
# clients wait for each other), the snapshots they took and any other
# entries (a snapshot left under its temporary name) in the directory.
measure_fleet() {
	local fmt=$1 day=$2 changed=$3 src=$S/images/vm.$1 i img
	local tm io equal=yes slowest fastest snaps0 snaps other data
	local sdir=$D/fleet/.vmsync-snapshots
	: > "$W/fleet.cmds"
	for ((i = 1; i <= FLEET; i++)); do
		img=$S/fleet/vm$i.$fmt
		cp --reflink=always "$src" "$img"
		# Each client a machine of its own: its own state directory.
		echo "$(push_cmd) --snapshot --state-dir=$S/state/fleet$i $img root@127.0.0.1:$D/fleet/" \
			>> "$W/fleet.cmds"
	done
	snaps0=0
	[ ! -d "$sdir" ] || snaps0=$(count_snaps "$sdir" '[!.]*')
	timed "fleet on $fmt day $day" \
		"bash $ROOT/tests/bench/fleet.sh $W/fleet.cmds $W/fleet.times"
	for ((i = 1; i <= FLEET; i++)); do
		same_content "$fmt" "$S/fleet/vm$i.$fmt" "$D/fleet/vm$i.$fmt" ||
			equal=NO
	done
	slowest=$(sort -g -k2,2 "$W/fleet.times" | awk 'END { print $2 }')
	fastest=$(sort -g -k2,2 "$W/fleet.times" | awk 'NR == 1 { print $2 }')
	snaps=$(($(count_snaps "$sdir" '[!.]*') - snaps0))
	other=$(count_snaps "$sdir" '.*')
	[ "$other" -eq 0 ] ||
		log "fleet: in $sdir: $(find "$sdir" -mindepth 1 -maxdepth 1 -name '.*' -printf '%f ')"
	data=$((FLEET * $(alloc_of "$src")))
	echo "$fmt $day $FLEET $tm $io $equal $slowest $fastest $data $snaps" \
		"$other $changed" |
		tr ' ' '\t' >> "$FLEET_ROWS"
	log "$fmt day $day fleet of $FLEET: $(echo "$tm" | awk '{ print $1 }') s, clients $fastest to $slowest s, $snaps snapshots, $other other entries, equal $equal"
}

# guest_stale QCOW2 RAW: bytes allocated in RAW where the guest disk of
# QCOW2 reads as zeros (qemu-img map).
guest_stale() {
	qemu-img map -f qcow2 --output=json "$1" |
		jq -r '.[] | select(.data | not) | "\(.start) \(.length)"' \
		> "$W/zero.ranges"
	"$BENCH_BIN/imgdiff" stale-ranges "$W/zero.ranges" "$2" | awk '{ print $2 }'
}

# ---- the days --------------------------------------------------------

run_format() {
	local fmt=$1 t day changed=- ch
	log "$fmt: $SIZE guest disk, $((DATA >> 20)) MiB of files on day 0"
	if [ "$fmt" = raw ]; then
		truncate -s "$VSIZE" "$S/images/vm.raw"
	else
		qemu-img create -q -f qcow2 "$S/images/vm.qcow2" "$VSIZE"
	fi
	guest_day "$fmt" 0
	for t in $TOOLS; do
		tool_applies "$t" "$fmt" || continue
		btrfs subvolume create "$D/$t" >/dev/null
	done
	first_syncs "$fmt"
	for t in $TOOLS; do
		tool_applies "$t" "$fmt" || continue
		if [ -z "$(tool_base "$t")" ]; then
			measure "$fmt" 0 "$t" -
		fi
	done
	if [[ fleet =~ $TOOLS_RE ]]; then
		btrfs subvolume create "$D/fleet" >/dev/null
		mkdir -p "$S/fleet"
		measure_fleet "$fmt" 0 -
	fi
	for t in $TOOLS; do
		local base
		base=$(tool_base "$t")
		tool_applies "$t" "$fmt" && [ -n "$base" ] || continue
		[ -d "$D/$base@day0" ] || die "$t needs $base (BENCH_TOOLS)"
		btrfs subvolume delete -c "$D/$t" >/dev/null
		btrfs subvolume snapshot "$D/$base@day0" "$D/$t" >/dev/null
		btrfs subvolume snapshot -r "$D/$t" "$D/$t@day0" >/dev/null
	done
	for day in $(seq 1 "$DAYS"); do
		guest_day "$fmt" "$day"
		ch=$(guest_change "$fmt" "$day")
		changed=${ch% *}
		log "$fmt day $day: guest changed $((changed >> 20)) MiB, trimmed $((${ch#* } >> 20)) MiB"
		for t in $TOOLS; do
			tool_applies "$t" "$fmt" || continue
			measure "$fmt" "$day" "$t" "$changed"
		done
		[[ ! fleet =~ $TOOLS_RE ]] || measure_fleet "$fmt" "$day" "$changed"
	done
	# Make room for the next format.
	for t in $TOOLS; do
		for sv in "$D/$t"/images@day* "$D/$t"@day* "$D/$t"; do
			[ -d "$sv" ] && btrfs subvolume delete "$sv" >/dev/null
		done
	done
	# Every snapshot, also one left under a temporary (dot) name.
	for sv in "$D"/fleet/.vmsync-snapshots/{*,.tmp-*} "$D/fleet"; do
		[ -d "$sv" ] && btrfs subvolume delete "$sv" >/dev/null
	done
	for sv in "$S"/images@day*; do btrfs subvolume delete "$sv" >/dev/null; done
	rm -f "$S/images/vm.$fmt" "$S"/state/*/* "$S"/fleet/*
	btrfs subvolume sync "$D" >/dev/null
	btrfs subvolume sync "$S" >/dev/null
}

# ---- scaling ---------------------------------------------------------

# spread FILE STRIDE PIECES LEN SEED: write PIECES pseudo-random pieces of
# LEN bytes into FILE, one every STRIDE bytes.
spread() {
	local i specs=()
	for ((i = 0; i < $3; i++)); do
		specs+=("$((i * $2)):$4:$(($5 + i))")
	done
	"$ROOT/$BUILD/tests/helpers/holes" fill "$1" "${specs[@]}"
}

# run_scale SIZE: a sparse raw image of SIZE with SIZE/256 of data in 1 MiB
# pieces: first sync, an unchanged run, then 1 % of the data changed in
# 64 KiB pieces.  vmsync and the physical limit only.
run_scale() {
	local size img=$S/images/scale.raw dst=$D/scale/scale.raw data run
	local tm io pieces stride changes
	size=$(bytes "$1")
	data=$((size / 256 < (4 << 20) ? (4 << 20) : size / 256))
	pieces=$((data >> 20))
	stride=$((size / pieces))
	changes=$((data / 100 >> 16 ? data / 100 >> 16 : 1))
	log "scale $1: $((data >> 20)) MiB of data"
	truncate -s "$size" "$img"
	spread "$img" "$stride" "$pieces" $((1 << 20)) 1
	btrfs subvolume create "$D/scale" >/dev/null
	for run in first unchanged 1%-changed; do
		# The changes overwrite existing pieces, spread evenly.
		if [ "$run" = 1%-changed ]; then
			spread "$img" $((stride * (pieces / changes))) \
				"$changes" $((64 << 10)) 7
		fi
		timed "vmsync on scale $1 $run" \
			"$VMSYNC -q --no-progress --state-dir=$S/state/scale $img $dst"
		qemu-img compare -q -f raw -F raw "$img" "$dst" ||
			die "scale $1 $run: the backup differs from the source"
		echo "$1 $run vmsync $tm $io" | tr ' ' '\t' >> "$SCALE_ROWS"
		[ "$run" = first ] && continue
		timed "readalloc on scale $1" "$BENCH_BIN/readalloc $img"
		echo "$1 $run readalloc $tm $io" | tr ' ' '\t' >> "$SCALE_ROWS"
	done
	log "scale $1 done"
	btrfs subvolume delete "$D/scale" >/dev/null
	rm -f "$img" "$S"/state/scale/*
	btrfs subvolume sync "$D" >/dev/null
}

# run_large SIZE DATA CHANGE: a sparse raw image of SIZE holding DATA in
# 1 MiB pieces spread evenly, in a subvolume of its own; vmsync syncs it
# and btrfs send sends a snapshot of it (not timed).  Then CHANGE of the
# data is overwritten, in 1 MiB pieces spread evenly, and each tool's
# incremental run is timed: vmsync with change detection against btrfs
# send -p | btrfs receive, both local, BENCH_REPEAT times taking turns
# (between runs, vmsync's backup is synced back to day 0, untimed).  Rows
# "tool elapsed user sys rss_kib source_read target_read target_written"
# of the run of median time.
run_large() {
	local size data change pieces stride n r t img=$S/large/large.raw
	size=$(bytes "$1")
	data=$(bytes "$2")
	change=$(bytes "$3")
	pieces=$((data >> 20))
	stride=$((size / pieces))
	n=$((change >> 20))
	log "large: $1 image, $2 of data, $3 changed"
	btrfs subvolume create "$S/large" >/dev/null
	btrfs subvolume create "$D/large" >/dev/null
	truncate -s "$size" "$img"
	spread "$img" "$stride" "$pieces" $((1 << 20)) 1
	sync
	btrfs subvolume snapshot -r "$S/large" "$S/large@0" >/dev/null
	$VMSYNC -q --no-progress --state-dir="$S/state/large" "$img" \
		"$D/large/large.raw"
	btrfs send -q $SEND_PROTO "$S/large@0" | btrfs receive -q "$D/large"
	spread "$img" $((stride * (pieces / n))) "$n" $((1 << 20)) 7
	sync
	btrfs subvolume snapshot -r "$S/large" "$S/large@1" >/dev/null
	: > "$W/reps.vmsync"
	: > "$W/reps.btrfs-send"
	for ((r = 1; r <= REPEAT; r++)); do
		if [ "$r" -gt 1 ]; then
			# Back to day 0, untimed: the source, then vmsync's
			# backup by a sync back (its index stays trusted and its
			# base is day 0 again); then the source of day 1.
			cp --reflink=always "$S/large@0/large.raw" "$img"
			$VMSYNC -q --no-progress --state-dir="$S/state/large" \
				"$img" "$D/large/large.raw"
			cp --reflink=always "$S/large@1/large.raw" "$img"
			btrfs subvolume delete "$D/large/large@1" >/dev/null
			btrfs subvolume sync "$D" >/dev/null
		fi
		timed "vmsync (large)" "$VMSYNC -q --no-progress --state-dir=$S/state/large $img $D/large/large.raw"
		echo "$tm $io" >> "$W/reps.vmsync"
		timed "btrfs send -p (large)" "btrfs send -q $SEND_PROTO -p $S/large@0 $S/large@1 | btrfs receive -q $D/large"
		echo "$tm $io" >> "$W/reps.btrfs-send"
	done
	for t in vmsync btrfs-send; do
		echo "$t $(median_row "$W/reps.$t")" | tr ' ' '\t' >> "$LARGE_ROWS"
	done
	qemu-img compare -q -f raw -F raw "$img" "$D/large/large.raw" ||
		die "large: vmsync's backup differs from the source"
	qemu-img compare -q -f raw -F raw "$img" "$D/large/large@1/large.raw" ||
		die "large: btrfs receive's copy differs from the source"
	log "large: vmsync $(awk '$1 == "vmsync" { print $2 }' "$LARGE_ROWS") s, btrfs send -p $(awk '$1 == "btrfs-send" { print $2 }' "$LARGE_ROWS") s"
	btrfs subvolume delete "$D/large/large@0" "$D/large/large@1" >/dev/null
	btrfs subvolume delete "$D/large" "$S/large@0" "$S/large@1" \
		"$S/large" >/dev/null
	rm -rf "$S/state/large"
	btrfs subvolume sync "$D" >/dev/null
	btrfs subvolume sync "$S" >/dev/null
}

# large_table SIZE DATA CHANGE ROWS: the markdown table of run_large's
# rows, vmsync's time as a ratio to btrfs send -p | receive.
large_table() {
	awk -F '\t' -v size="$1" -v data="$2" -v change="$3" '
	function mib(b) { return sprintf("%.0f", b / 1048576) }
	NR == FNR { if ($1 == "btrfs-send") ref = $2; next }
	FNR == 1 {
		print ""
		print "## A large change: " change " of a " size " sparse image holding " data
		print ""
		print "| tool | time s | CPU s | peak RSS MiB | source read | target read | target written | time / btrfs send -p |"
		print "|---|---|---|---|---|---|---|---|"
	}
	{
		r = ref > 0 ? sprintf("%.2f", $2 / ref) : "-"
		print "| " $1 " | " $2 " | " $3 + $4 " | " sprintf("%.1f", $5 / 1024) \
		    " | " mib($6) " | " mib($7) " | " mib($8) " | " r " |"
		if ($1 == "vmsync") v = $2
	}
	END { if (ref > 0 && v > 0) printf "\n- vmsync with change detection %.2f s / btrfs send -p | receive %.2f s = %.2f (target <= 1.0): %s\n", \
	    v, ref, v / ref, v <= ref ? "met" : "**not met**" }' "$4" "$4"
}

# ---- formats read through qemu ---------------------------------------

# run_foreign FMT...: the guest of day 0 converted to each FMT, then a first
# sync of each by vmsync -O raw and by nbdcopy from qemu-nbd, into a raw
# file on the target btrfs, BENCH_REPEAT times each, the two tools taking
# turns (a drift of the machine then weighs on both); rows "format tool
# elapsed user sys rss_kib source_read target_read target_written
# target_alloc" of the run of median time.
run_foreign() {
	local fmt img t dst cmd r
	log "foreign formats: $SIZE guest disk, $((DATA >> 20)) MiB of files"
	truncate -s "$VSIZE" "$S/images/vm.raw"
	guest_day raw 0
	btrfs subvolume create "$D/foreign" >/dev/null
	for fmt in "$@"; do
		img=$S/images/vm.$fmt
		qemu-img convert -f raw -O "$fmt" "$S/images/vm.raw" "$img"
		: > "$W/reps.vmsync-O-raw"
		: > "$W/reps.nbdcopy"
		for ((r = 1; r <= REPEAT; r++)); do
			for t in vmsync-O-raw nbdcopy; do
				dst=$D/foreign/$t.$fmt.raw
				rm -rf "$dst" "$S/state/foreign"
				case $t in
				vmsync-O-raw) cmd="$VMSYNC -q --no-progress --state-dir=$S/state/foreign -O raw $img $dst" ;;
				nbdcopy) cmd="nbdcopy -- [ qemu-nbd -r -f $fmt $img ] $dst" ;;
				esac
				timed "$t on $fmt" "$cmd"
				same_content "$fmt" "$img" "$dst" ||
					die "$t on $fmt: the copy differs from the image"
				echo "$tm $io $(alloc_of "$dst")" >> "$W/reps.$t"
			done
		done
		for t in vmsync-O-raw nbdcopy; do
			echo "$fmt $t $(median_row "$W/reps.$t")" | tr ' ' '\t' \
				>> "$FOREIGN_ROWS"
			log "$fmt $t: $(median_row "$W/reps.$t" | awk '{ print $1 }') s"
		done
		rm -f "$img"
	done
	btrfs subvolume delete "$D/foreign" >/dev/null
	btrfs subvolume delete "$S/images@day0" >/dev/null
	rm -rf "$S/images/vm.raw" "$S/state/foreign"
	btrfs subvolume sync "$D" >/dev/null
}

# median_row FILE: the line of FILE whose first field (a time) is the
# median.
median_row() {
	sort -n -k1,1 "$1" | sed -n "$((($(wc -l < "$1") + 1) / 2))p"
}

# foreign_table ROWS: the markdown table of run_foreign's rows, each
# vmsync time also as a ratio to nbdcopy's on the same format.
foreign_table() {
	awk -F '\t' '
	function mib(b) { return sprintf("%.0f", b / 1048576) }
	NR == FNR { if ($2 == "nbdcopy") ref[$1] = $3; next }
	FNR == 1 {
		print ""
		print "## Formats read through qemu: first sync"
		print ""
		print "| format | tool | time s | CPU s | source read | target written | target alloc | time / nbdcopy |"
		print "|---|---|---|---|---|---|---|---|"
	}
	{
		r = ref[$1] > 0 ? sprintf("%.2f", $3 / ref[$1]) : "-"
		print "| " $1 " | " $2 " | " $3 " | " $4 + $5 " | " mib($7) \
		    " | " mib($9) " | " mib($10) " | " r " |"
		if ($2 != "nbdcopy" && ref[$1] > 0)
			line[++nl] = sprintf("- %s: vmsync %.2f s / nbdcopy %.2f s = %.2f (target <= 1.2): %s", \
			    $1, $3, ref[$1], $3 / ref[$1], $3 <= 1.2 * ref[$1] ? "met" : "**not met**")
	}
	END { if (nl) print ""; for (i = 1; i <= nl; i++) print line[i] }' "$1" "$1"
}

# ---- archives ----------------------------------------------------------

# run_archive: the guest of day 0 (raw) synced by vmsync into a raw file,
# exported by vmsync into a .tar.zst, and archived by GNU tar --sparse
# piped to zstd at the same level and threads (the same job without
# vmsync), BENCH_REPEAT times each, taking turns (the run of median time
# kept); rows "tool elapsed user sys rss_kib source_read target_read
# target_written output_bytes".
ARCHIVE_TOOLS="vmsync vmsync-archive tar-zstd"
run_archive() {
	local img=$S/images/vm.raw t dst cmd r
	command -v zstd >/dev/null || die "zstd is missing (archive)"
	log "archive: $SIZE guest disk, $((DATA >> 20)) MiB of files"
	truncate -s "$VSIZE" "$img"
	guest_day raw 0
	btrfs subvolume create "$D/archive" >/dev/null
	for t in $ARCHIVE_TOOLS; do : > "$W/reps.$t"; done
	for ((r = 1; r <= REPEAT; r++)); do
		for t in $ARCHIVE_TOOLS; do
			case $t in
			vmsync) dst=$D/archive/vm.raw
				cmd="$VMSYNC -q --no-progress --state-dir=$S/state/archive $img $dst" ;;
			vmsync-archive) dst=$D/archive/vm.tar.zst
				cmd="$VMSYNC -q --no-progress $img $dst" ;;
			tar-zstd) dst=$D/archive/tar.tar.zst
				cmd="tar --sparse -C $S/images -cf - vm.raw | zstd -q -1 -T$(nproc) > $dst" ;;
			esac
			# The last run's file is freed before this one is
			# timed, as a fresh subvolume is for the day-0 rows.
			rm -rf "$dst" "$S/state/archive"
			sync -f "$D"
			timed "$t (archive)" "$cmd"
			echo "$tm $io $(stat -c %s "$dst")" >> "$W/reps.$t"
		done
	done
	same_content raw "$img" "$D/archive/vm.raw" ||
		die "vmsync (archive): the copy differs from the image"
	for dst in vm.tar.zst tar.tar.zst; do
		zstd -q -d -c "$D/archive/$dst" | tar -xf - -C "$W" vm.raw
		cmp "$img" "$W/vm.raw" ||
			die "$dst (archive): the entry differs from the image"
		rm -f "$W/vm.raw"
	done
	for t in $ARCHIVE_TOOLS; do
		echo "$t $(median_row "$W/reps.$t")" | tr ' ' '\t' >> "$ARCHIVE_ROWS"
		log "archive $t: $(median_row "$W/reps.$t" | awk '{ print $1 }') s"
	done
	zstd_alone "$img"
	btrfs subvolume delete "$D/archive" >/dev/null
	btrfs subvolume delete "$S/images@day0" >/dev/null
	rm -rf "$img" "$S/state/archive"
	btrfs subvolume sync "$D" >/dev/null
}

# zstd_alone IMG: the export's pax stream of IMG compressed by zstd alone,
# at the export's level and threads, from memory into /dev/null: what
# compressing these bytes costs on this machine, whatever writes the
# archive (row "zstd-alone"; skipped when memory cannot hold the stream).
zstd_alone() {
	local tar=/dev/shm/vmsync-bench-alone.$$.tar r avail
	avail=$(awk '$1 == "MemAvailable:" { print $2 * 1024 }' /proc/meminfo)
	if [ ! -d /dev/shm ] || [ "$avail" -lt $((VSIZE * 2)) ]; then
		log "archive zstd-alone: skipped, too little memory to hold the stream"
		return
	fi
	"$VMSYNC" -q --no-progress --archive=tar "$1" - > "$tar"
	: > "$W/reps.zstd-alone"
	for ((r = 1; r <= REPEAT; r++)); do
		timed "zstd-alone (archive)" "zstd -q -1 -T$(nproc) --check < $tar > /dev/null"
		echo "$tm $io $(zstd -q -1 -T$(nproc) --check < "$tar" | wc -c)" >> "$W/reps.zstd-alone"
	done
	rm -f "$tar"
	echo "zstd-alone $(median_row "$W/reps.zstd-alone")" | tr ' ' '\t' >> "$ARCHIVE_ROWS"
	log "archive zstd-alone: $(median_row "$W/reps.zstd-alone" | awk '{ print $1 }') s"
}

# archive_table ROWS: the markdown table of run_archive's rows, the export's
# time as a ratio to the sync's.
archive_table() {
	awk -F '\t' '
	function mib(b) { return sprintf("%.0f", b / 1048576) }
	NR == FNR { if ($1 == "vmsync") ref = $2; next }
	FNR == 1 {
		print ""
		print "## Export into a .tar.zst against a sync into a file"
		print ""
		print "| tool | time s | CPU s | peak RSS MiB | source read | written | output MiB | time / sync |"
		print "|---|---|---|---|---|---|---|---|"
	}
	{
		r = ref > 0 ? sprintf("%.2f", $2 / ref) : "-"
		print "| " $1 " | " $2 " | " $3 + $4 " | " sprintf("%.1f", $5 / 1024) \
		    " | " mib($6) " | " mib($8) " | " mib($9) " | " r " |"
	}
	$1 == "vmsync-archive" { ex = $2 }
	$1 == "tar-zstd" { tz = $2 }
	$1 == "zstd-alone" { fl = $2; flcpu = $3 + $4 }
	END {
		if (ref > 0 && ex > 0)
			printf "\n- export %.2f s / sync %.2f s = %.2f (target <= 1.2): %s\n", \
			    ex, ref, ex / ref, ex <= 1.2 * ref ? "met" : "**not met**"
		if (tz > 0 && ex > 0)
			printf "- export %.2f s / tar --sparse | zstd %.2f s = %.2f\n", ex, tz, ex / tz
		if (fl > 0 && ref > 0)
			printf "- zstd alone on the same pax stream, from memory into /dev/null: %.2f s (%.2f s of CPU on %d CPUs) = %.2f x sync\n", \
			    fl, flcpu, ncpu, fl / ref
	}' ncpu="$(nproc)" "$1" "$1"
}

for fmt in $FORMATS; do
	run_format "$fmt"
done
[[ ! archive =~ $TOOLS_RE ]] || run_archive
if [[ foreign =~ $TOOLS_RE ]] && [ -n "$FOREIGN" ]; then
	for c in qemu-nbd nbdcopy; do
		command -v "$c" >/dev/null || die "$c is missing (foreign)"
	done
	run_foreign $FOREIGN
fi
for s in $SCALES; do
	run_scale "$s"
done
if [[ large =~ $TOOLS_RE ]] && [ -n "$LARGE" ]; then
	run_large $LARGE
fi

name=$(date -u +%Y-%m-%d)-$SIZE
{
	echo "machine	$(nproc) CPUs, $(awk '/MemTotal/ { printf "%d GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r)"
	echo "size	$SIZE"
	echo "seed	$SEED"
	echo "repeat	$REPEAT"
	echo "vmsync	$("$VMSYNC" --version | head -n 1)"
} > "$W/meta.tsv"
sh tests/bench/report.sh "$W/meta.tsv" "$ROWS" "$SCALE_ROWS" \
	"$OUT/$name.md" "$OUT/$name.json" "$FLEET_ROWS"
[ ! -s "$FOREIGN_ROWS" ] || foreign_table "$FOREIGN_ROWS" >> "$OUT/$name.md"
[ ! -s "$ARCHIVE_ROWS" ] || archive_table "$ARCHIVE_ROWS" >> "$OUT/$name.md"
[ ! -s "$LARGE_ROWS" ] || large_table $LARGE "$LARGE_ROWS" >> "$OUT/$name.md"
cat "$OUT/$name.md"
echo "bench: results in $OUT/$name.md and $OUT/$name.json" >&2
