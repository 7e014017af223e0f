#!/usr/bin/env bash
# Proves: a qcow2 image used by a real filesystem is backed up right.
# qemu-storage-daemon exports the image as a FUSE file (discard=unmap on
# both nodes), a loop device on it gets an ext4 with random and text files.
# First sync, both views into btrfs, with the filesystem frozen and the
# daemon running (qemu-img reads with -U): equal, qemu-img check clean.
# Then files are deleted and new ones written, fstrim, umount, loop
# detached, daemon stopped; the second sync gives equal targets, the
# file-view target's allocation dropped by about the trimmed data, and the
# guest-view target holds only qemu-img map's data.  A third round with
# pass-discard-request=off on the qcow2 node: the trimmed clusters stay
# allocated in the source file (its allocation does not drop) but are dead,
# and are punched on the file-view target.
. "$VMSYNC_TOP/tests/functions.sh"
. "$VMSYNC_TOP/tests/qcow2.sh"
requires_btrfs
requires qemu-img qemu-storage-daemon jq mkfs.ext4 fstrim fsfreeze
[ -c /dev/fuse ] || skip "needs /dev/fuse"
grep -qw fuse /proc/filesystems || modprobe fuse 2>/dev/null ||
	skip "kernel has no fuse"

mnt=$(mkbtrfs 2G)
img=$TMP/vm.qcow2
fusefile=$TMP/vm.fuse
fsmnt=$TMP/fs
mkdir "$fsmnt"
qemu-img create -q -f qcow2 "$img" 256M
: > "$fusefile"

fuse_mounted() {
	awk -v f="$fusefile" '$2 == f { m = 1 } END { exit !m }' /proc/mounts
}

# start_qsd [QCOW2 NODE OPTIONS]: export the image on $fusefile, attach a
# loop device ($dev).
start_qsd() {
	local i
	qemu-storage-daemon --pidfile "$TMP/qsd.pid" \
		--blockdev "driver=file,filename=$img,node-name=f,discard=unmap" \
		--blockdev "driver=qcow2,file=f,node-name=q,discard=unmap${1:+,$1}" \
		--export "type=fuse,id=e,node-name=q,mountpoint=$fusefile,writable=on" \
		> "$TMP/qsd.log" 2>&1 &
	qsd=$!
	cleanup_fn "stop_qsd"
	for i in $(seq 100); do
		fuse_mounted && break
		kill -0 $qsd 2>/dev/null || { cat "$TMP/qsd.log" >&2; fail "qemu-storage-daemon died"; }
		sleep 0.1
	done
	fuse_mounted || fail "the FUSE export did not appear"
	[ "$(stat -c %s "$fusefile")" -eq $((256 * M)) ] || fail "FUSE export size"
	dev=$(losetup -f --show "$fusefile") || fail "losetup $fusefile"
	cleanup_fn "losetup -d $dev 2>/dev/null"
}

# stop_qsd: detach the loop device, stop the daemon, wait until it is gone.
stop_qsd() {
	local i
	[ -n "${qsd:-}" ] || return 0
	mountpoint -q "$fsmnt" && umount "$fsmnt"
	if [ -n "${dev:-}" ]; then
		losetup -d "$dev" 2>/dev/null
		for i in $(seq 50); do
			[ -z "$(losetup -j "$fusefile")" ] && break
			sleep 0.1
		done
		dev=
	fi
	kill "$qsd" 2>/dev/null
	for i in $(seq 100); do
		kill -0 "$qsd" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$qsd" 2>/dev/null && kill -9 "$qsd"
	wait "$qsd" 2>/dev/null
	fuse_mounted && umount -l "$fusefile"
	qsd=
	return 0
}

fill() {	# fill FILE MiB random|text
	if [ "$3" = random ]; then
		head -c $(($2 * M)) /dev/urandom > "$1"
	else
		{ seq 1 100000000 || :; } | head -c $(($2 * M)) > "$1"
	fi
}

# --- Round 1: make a filesystem, write files, sync it frozen.
start_qsd
mkfs.ext4 -q -E lazy_itable_init=0,lazy_journal_init=0 "$dev" ||
	fail "mkfs.ext4 on the exported image"
mount "$dev" "$fsmnt"
cleanup_fn "umount -l '$fsmnt' 2>/dev/null"
fill "$fsmnt/a.bin" 24 random
fill "$fsmnt/b.txt" 8 text
fill "$fsmnt/c.bin" 8 random
mkdir "$fsmnt/dir"
for i in 1 2 3 4 5 6 7 8; do fill "$fsmnt/dir/f$i" 1 random; done
sync
sha256sum "$fsmnt"/b.txt "$fsmnt"/dir/* > "$TMP/sums"
fsfreeze -f "$fsmnt"
cleanup_fn "fsfreeze -u '$fsmnt' 2>/dev/null"
vs -q "$img" "$mnt/" || fail "first sync, file view: exit $?"
vs -q -O raw "$img" "$mnt/" || fail "first sync, guest view: exit $?"
QU=-U file_ok "$img" "$mnt/vm.qcow2" "round 1"
QU=-U guest_ok "$img" "$mnt/vm.raw" "round 1"
fsfreeze -u "$fsmnt"
a1=$(alloc "$mnt/vm.qcow2")
[ "$a1" -ge $((48 * M)) ] || fail "round 1: file view holds only $a1 bytes"

# --- Round 2: delete, write, trim, stop everything, sync.
rm -r "$fsmnt/a.bin" "$fsmnt/dir"
fill "$fsmnt/d.bin" 4 random
fill "$fsmnt/e.txt" 2 text
sync
fstrim "$fsmnt" || fail "fstrim"
umount "$fsmnt"
stop_qsd
qemu-img check -q -f qcow2 "$img" || fail "round 2: the source fails qemu-img check"
sync_stats "$img" "$mnt/"
[ "$(stat_of punched_bytes)" -ge $((24 * M)) ] ||
	fail "round 2: punched $(stat_of punched_bytes) bytes of 32 MiB trimmed"
vs -q -O raw "$img" "$mnt/"
file_ok "$img" "$mnt/vm.qcow2" "round 2"
guest_ok "$img" "$mnt/vm.raw" "round 2"
a2=$(alloc "$mnt/vm.qcow2")
[ "$a2" -le $((a1 - 24 * M)) ] ||
	fail "round 2: file view allocation $a1 -> $a2 after trimming 32 MiB"

# The files are on the guest-view target: mount it read-only and look.
rdev=$(mkloopdev "$mnt/vm.raw")
mkdir "$TMP/restore"
mount -o ro,noload "$rdev" "$TMP/restore" || fail "cannot mount the guest-view target"
cleanup_fn "umount -l '$TMP/restore' 2>/dev/null"
(cd "$TMP/restore" && sha256sum -c --quiet <(grep b.txt "$TMP/sums" |
	sed "s|$fsmnt/||")) || fail "b.txt differs on the restored filesystem"
if [ -e "$TMP/restore/a.bin" ] || [ ! -s "$TMP/restore/d.bin" ]; then
	fail "restored filesystem lacks the changes"
fi
umount "$TMP/restore"

# --- Round 3: discards not passed down; the source keeps the clusters.
start_qsd pass-discard-request=off
mount "$dev" "$fsmnt"
rm "$fsmnt/c.bin"
sync
s3=$(alloc "$img")
fstrim "$fsmnt" || fail "fstrim"
umount "$fsmnt"
stop_qsd
[ "$(alloc "$img")" -ge $((s3 - M)) ] ||
	fail "round 3: the source dropped the trimmed clusters ($s3 -> $(alloc "$img"))"
sync_stats "$img" "$mnt/"
[ "$(stat_of punched_bytes)" -ge $((6 * M)) ] ||
	fail "round 3: punched $(stat_of punched_bytes) bytes of 8 MiB trimmed"
vs -q -O raw "$img" "$mnt/"
file_ok "$img" "$mnt/vm.qcow2" "round 3"
guest_ok "$img" "$mnt/vm.raw" "round 3"
a3=$(alloc "$mnt/vm.qcow2")
[ "$a3" -le $((a2 - 6 * M)) ] ||
	fail "round 3: file view allocation $a2 -> $a3 after trimming 8 MiB"
[ "$a3" -le $(( $(alloc "$img") - 6 * M )) ] ||
	fail "round 3: file view holds $a3 bytes, the source $(alloc "$img")"
