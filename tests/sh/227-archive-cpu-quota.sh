#!/usr/bin/env bash
# Proves: a .tar.zst export compresses with one thread per CPU it may
# keep busy, which a cgroup's CPU quota lowers as much as an affinity
# mask (a container limited to one CPU of many gets one thread, and one
# thread's memory).  Read from `vmsync -v`:
#  - outside any quota: one thread per CPU (at most 8);
#  - under `taskset -c 0`: 1;
#  - in a cgroup whose quota is one CPU (cgroup v2 cpu.max, or v1
#    cpu.cfs_quota_us, whichever this machine has): 1;
#  - in a cgroup whose parent has that quota: 1.
# The archive is the same in every case.
. "$VMSYNC_TOP/tests/functions.sh"
requires_root
requires taskset zstd

ncpu=$(nproc)
[ "$ncpu" -ge 2 ] || skip "one CPU: no quota can lower the count"
want=$((ncpu > 8 ? 8 : ncpu))

# A cgroup with a CPU controller that takes a quota: v2 if the cpu
# controller is enabled below the root, else v1's cpu hierarchy.
if grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null; then
	CG=/sys/fs/cgroup/vmsync-test.$$
	set_quota() { echo "$2 100000" > "$1/cpu.max"; }
elif [ -w /sys/fs/cgroup/cpu/cgroup.procs ]; then
	CG=/sys/fs/cgroup/cpu/vmsync-test.$$
	set_quota() {
		echo 100000 > "$1/cpu.cfs_period_us"
		echo "$2" > "$1/cpu.cfs_quota_us"
	}
else
	skip "no cgroup with a CPU quota can be made"
fi
mkdir "$CG" || skip "cannot make a cgroup"
cleanup_fn "rmdir $CG/inner $CG 2>/dev/null"
mkdir "$CG/inner" || fail "mkdir $CG/inner"

cd "$TMP" || fail "cd $TMP"
head -c $((8 << 20)) /dev/urandom > vm.img

# threads_of LABEL CMD...: run CMD (an export of vm.img, -v) and print
# the number of compressing threads it reports.
threads_of() {
	local label=$1 n
	shift
	rm -f vm.tar.zst
	"$@" > out 2>&1 || { cat out; fail "$label: the export failed"; }
	n=$(sed -n 's/.*zstd level 1, \([0-9]*\) compressing thread.*/\1/p' out)
	[ -n "$n" ] || { cat out; fail "$label: no thread count in -v"; }
	zstd -q -d -c vm.tar.zst | tar -xOf - vm.img | cmp - vm.img ||
		fail "$label: the archive's entry differs from the image"
	echo "$n"
}

# in_cgroup DIR CMD...: run CMD as a process of the cgroup DIR.
in_cgroup() {
	local dir=$1
	shift
	sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' sh "$dir" "$@"
}

n=$(threads_of plain "$VMSYNC" -v vm.img vm.tar.zst) || exit 1
[ "$n" -eq "$want" ] || fail "no quota: $n threads, want $want"

n=$(threads_of taskset taskset -c 0 "$VMSYNC" -v vm.img vm.tar.zst) || exit 1
[ "$n" -eq 1 ] || fail "taskset -c 0: $n threads, want 1"

set_quota "$CG" 100000
n=$(threads_of quota in_cgroup "$CG" "$VMSYNC" -v vm.img vm.tar.zst) || exit 1
[ "$n" -eq 1 ] || fail "a quota of one CPU: $n threads, want 1"

n=$(threads_of parent in_cgroup "$CG/inner" "$VMSYNC" -v vm.img vm.tar.zst) ||
	exit 1
[ "$n" -eq 1 ] || fail "a parent's quota of one CPU: $n threads, want 1"

# 1.5 CPUs of quota keep two threads busy.
set_quota "$CG" 150000
n=$(threads_of half in_cgroup "$CG/inner" "$VMSYNC" -v vm.img vm.tar.zst) ||
	exit 1
[ "$n" -eq 2 ] || fail "a quota of 1.5 CPUs: $n threads, want 2"
echo "ok: $want threads without a quota, 1 under taskset and a one-CPU quota"
