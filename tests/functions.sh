# tests/functions.sh - sourced by every tests/sh/NNN-*.sh.
#
# requires CMD...       skip unless each command exists
# requires_root         skip unless root
# requires_btrfs        skip unless loop devices and btrfs can be used
# requires_ext4         skip unless loop devices and ext4 can be used
# skip "why"            exit 77 (exit 1 under VMSYNC_TEST_STRICT=1)
# fail "why"            print and exit 1
# cleanup_fn CMD...     run CMD at exit (last registered runs first)
# mkbtrfs SIZE          make and mount a btrfs on a loop device; prints the
#                       mount point; torn down at exit
# mkext4 SIZE           make and mount an ext4 of 4 KiB blocks on a loop
#                       device; prints the mount point; torn down at exit
# mkloopdev FILE        attach FILE to a loop device; prints it; detached at exit
# must_fail CODE RE CMD...  run CMD; require exit CODE and stderr matching RE
# same A B              cmp A B, and qemu-img compare of the two as raw
# alloc FILE            allocated bytes of FILE (du)
# data_ranges FILE      "off len" lines of FILE's data (SEEK_DATA), via helper
# vs ARGS...            run vmsync ($VMSYNC)
# rvs ARGS...           run vmsync with "-e localsh": host:path arguments
#                       reach a vmsync --server started here, without ssh
# sync_stats ARGS...    run vmsync --json ARGS; leaves the JSON in $STATS
# stat_of KEY           a number from the first image of $STATS
# start_vmsync ARGS...  vmsync --json in the background, returning once it
#                       has written something (mid-run); sets $pid; needs
#                       VMSYNC_DEBUG_OPS=$TMP/ops
# hold_lock FILE        another process holds flock -x on FILE (made if
#                       missing) until killed; sets $holder
# qemu_hold FILE        qemu-io opens FILE (raw, for writing) and keeps it,
#                       with its OFD locks, until qemu_release
# start_sshd DIR [LINE...]  a real sshd on 127.0.0.1 with its own keys in
#                       DIR; the user key DIR/userkey may log in as root,
#                       and each LINE (authorized_keys options for a key
#                       made as DIR/forcedkey) is added; sets $SSH_OPTS;
#                       stopped at exit
set -eu
set -o pipefail

: "${VMSYNC:?run through tests/run.sh or set VMSYNC}"
: "${VMSYNC_HELPERS:?}"
HOLES="$VMSYNC_HELPERS/holes"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/vmsync-test.XXXXXX")
# Cleanups live in a file, so that helpers called as $(mkbtrfs ...) -- in a
# subshell -- can register them too.  They run last-registered first.
_CLEANUPS=$TMP/.cleanups
: > "$_CLEANUPS"

_run_cleanups() {
	set +e
	if [ -f "$_CLEANUPS" ]; then
		tac "$_CLEANUPS" > "$_CLEANUPS.run"
		while IFS= read -r _c; do
			eval "$_c"
		done < "$_CLEANUPS.run"
	fi
	rm -rf "$TMP"
}
trap _run_cleanups EXIT
trap 'exit 130' INT TERM

cleanup_fn() {
	printf '%s\n' "$*" >> "$_CLEANUPS"
}

skip() {
	if [ "${VMSYNC_TEST_STRICT:-0}" = 1 ]; then
		echo "SKIP not allowed under VMSYNC_TEST_STRICT=1: $*" >&2
		exit 1
	fi
	echo "skipped: $*"
	exit 77
}

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

requires() {
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || skip "needs $c"
	done
}

requires_root() {
	[ "$(id -u)" -eq 0 ] || skip "needs root"
}

requires_btrfs() {
	requires_root
	requires losetup mkfs.btrfs btrfs mount
	[ -w /dev/loop-control ] || skip "needs /dev/loop-control"
	grep -qw btrfs /proc/filesystems || modprobe btrfs 2>/dev/null ||
		skip "kernel has no btrfs"
	grep -qw btrfs /proc/filesystems || skip "kernel has no btrfs"
}

requires_ext4() {
	requires_root
	requires losetup mkfs.ext4 mount
	[ -w /dev/loop-control ] || skip "needs /dev/loop-control"
	grep -qw ext4 /proc/filesystems || modprobe ext4 2>/dev/null ||
		skip "kernel has no ext4"
	grep -qw ext4 /proc/filesystems || skip "kernel has no ext4"
}

mkloopdev() {
	local dev
	dev=$(losetup -f --show "$1") || fail "losetup $1"
	cleanup_fn "losetup -d '$dev' 2>/dev/null"
	echo "$dev"
}

mkbtrfs() {
	local size=$1 img mnt dev
	img=$(mktemp "$TMP/btrfs.XXXXXX.img")
	mnt=$(mktemp -d "$TMP/mnt.XXXXXX")
	truncate -s "$size" "$img"
	mkfs.btrfs -q -f "$img" >/dev/null || fail "mkfs.btrfs"
	dev=$(losetup -f --show "$img") || fail "losetup"
	mount "$dev" "$mnt" || { losetup -d "$dev"; fail "mount $dev"; }
	cleanup_fn "umount -l '$mnt' 2>/dev/null; losetup -d '$dev' 2>/dev/null"
	echo "$mnt"
}

mkext4() {
	local size=$1 img mnt dev
	img=$(mktemp "$TMP/ext4.XXXXXX.img")
	mnt=$(mktemp -d "$TMP/mnt.XXXXXX")
	truncate -s "$size" "$img"
	mkfs.ext4 -q -F -m 0 -b 4096 "$img" || fail "mkfs.ext4"
	dev=$(losetup -f --show "$img") || fail "losetup"
	mount -t ext4 "$dev" "$mnt" || { losetup -d "$dev"; fail "mount $dev"; }
	cleanup_fn "umount -l '$mnt' 2>/dev/null; losetup -d '$dev' 2>/dev/null"
	echo "$mnt"
}

must_fail() {
	local code=$1 re=$2 rc=0
	shift 2
	"$@" 2>"$TMP/stderr" >"$TMP/stdout" || rc=$?
	if [ "$rc" -ne "$code" ]; then
		cat "$TMP/stderr" >&2
		fail "expected exit $code, got $rc: $*"
	fi
	if ! grep -Eq -- "$re" "$TMP/stderr"; then
		cat "$TMP/stderr" >&2
		fail "stderr does not match /$re/: $*"
	fi
	if [ "$(wc -l < "$TMP/stderr")" -ne 1 ]; then
		cat "$TMP/stderr" >&2
		fail "expected a one-line error: $*"
	fi
}

same() {
	cmp "$1" "$2" || fail "content differs: $1 $2"
	qemu-img compare -q -f raw -F raw "$1" "$2" ||
		fail "qemu-img compare: $1 $2"
}

alloc() {
	sync "$1"
	du -B1 "$1" | cut -f1
}

data_ranges() {
	"$HOLES" report "$1"
}

vs() {
	"$VMSYNC" "$@"
}

LOCALSH=$VMSYNC_TOP/tests/helpers/localsh
rvs() {
	"$VMSYNC" -e "$LOCALSH" --remote-vmsync "$VMSYNC" "$@"
}

sync_stats() {
	STATS=$("$VMSYNC" --json --no-progress "$@") || return $?
}

stat_of() {
	printf '%s' "$STATS" | jq -r ".images[0].$1"
}

start_vmsync() {
	: > "$TMP/ops"
	"$VMSYNC" --json --no-progress "$@" > "$TMP/out" 2> "$TMP/err" &
	pid=$!
	for _ in $(seq 1 2000); do
		[ -s "$TMP/ops" ] && return 0
		kill -0 "$pid" 2> /dev/null || return 0
		sleep 0.005
	done
	fail "vmsync wrote nothing in 10 s"
}

# spoiled_import GOOD ARCHIVE PREV CMD...: copy GOOD to ARCHIVE, import
# it into d/ and run CMD (which spoils ARCHIVE) once the run writes
# (VMSYNC_DEBUG_OPS=$TMP/ops); up to three tries.  A run that ended first
# is undone by importing PREV again, or the next run would write nothing
# and end before CMD.  The spoiled run's exit status in $rc, its stderr
# in $TMP/err, its JSON in $TMP/out.
spoiled_import() {
	local good=$1 archive=$2 prev=$3 attempt
	shift 3
	for attempt in 1 2 3; do
		cp "$good" "$archive"
		start_vmsync "$archive" d/
		"$@"
		rc=0
		wait "$pid" || rc=$?
		[ "$rc" -eq 0 ] || return 0
		echo "attempt $attempt: the run had read the archive already"
		"$VMSYNC" -q --no-progress "$prev" d/
	done
	fail "never spoiled $archive during a run"
}

# spoiled_failed RE: the spoiled run failed as a source read error does:
# exit 2, one line matching RE, the image's JSON status 2.
spoiled_failed() {
	cat "$TMP/err"
	[ "$rc" -eq 2 ] || fail "spoiled mid-run: exit $rc, not 2"
	[ "$(wc -l < "$TMP/err")" -eq 1 ] || fail "not a one-line error"
	grep -Eq "$1" "$TMP/err" || fail "the error does not match /$1/"
	[ "$(jq '.images[0].status' "$TMP/out")" -eq 2 ] || fail "JSON status"
}

# One process, so that killing it releases the lock.
hold_lock() {
	rm -f "$TMP/holder"
	( exec 9<> "$1"; flock -x 9; echo locked > "$TMP/holder"
		exec sleep 30 ) &
	holder=$!
	cleanup_fn "kill $holder 2>/dev/null"
	for _ in $(seq 500); do
		[ -s "$TMP/holder" ] && return 0
		sleep 0.01
	done
	fail "flock did not take the lock on $1"
}

start_sshd() {
	local d=$1 port line
	shift
	[ -x /usr/sbin/sshd ] || skip "needs sshd (openssh-server)"
	requires ssh ssh-keygen
	mkdir -p "$d" /run/sshd
	ssh-keygen -q -t ed25519 -N '' -f "$d/hostkey"
	ssh-keygen -q -t ed25519 -N '' -f "$d/userkey"
	ssh-keygen -q -t ed25519 -N '' -f "$d/forcedkey"
	cat "$d/userkey.pub" > "$d/authorized_keys"
	for line in "$@"; do
		printf '%s %s\n' "$line" "$(cat "$d/forcedkey.pub")" >> "$d/authorized_keys"
	done
	port=$((20000 + RANDOM % 20000))
	cat > "$d/sshd_config" <<EOS
Port $port
ListenAddress 127.0.0.1
HostKey $d/hostkey
AuthorizedKeysFile $d/authorized_keys
PidFile $d/sshd.pid
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
MaxStartups 64
MaxSessions 64
EOS
	/usr/sbin/sshd -f "$d/sshd_config" -E "$d/sshd.log"
	cleanup_fn "kill \$(cat '$d/sshd.pid') 2>/dev/null"
	SSH_OPTS="-p $port -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR"
	for _ in $(seq 50); do
		ssh $SSH_OPTS -i "$d/userkey" root@127.0.0.1 true 2>/dev/null && return 0
		sleep 0.1
	done
	fail "sshd did not come up: $(cat "$d/sshd.log")"
}

qemu_hold() {
	requires qemu-io
	rm -f "$TMP/qemu-cmd"
	mkfifo "$TMP/qemu-cmd"
	qemu-io -f raw "$1" < "$TMP/qemu-cmd" > "$TMP/qemu-out" 2>&1 &
	_qemu_pid=$!
	exec 7> "$TMP/qemu-cmd"
	cleanup_fn "kill $_qemu_pid 2>/dev/null"
	local ino
	ino=$(stat -c %i "$1")
	for _ in $(seq 500); do
		grep -q "OFDLCK .*:$ino " /proc/locks && return 0
		sleep 0.01
	done
	fail "qemu-io did not lock $1: $(cat "$TMP/qemu-out")"
}

qemu_release() {
	echo quit >&7
	exec 7>&-
	wait "$_qemu_pid" 2> /dev/null || true
}
