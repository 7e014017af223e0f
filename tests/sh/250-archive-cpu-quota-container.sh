#!/usr/bin/env bash
# Proves: in a container (a cgroup namespace, as docker and podman make
# them), whose /proc/self/cgroup names its own cgroup "/", the CPU quota
# of that cgroup, seen at the root of its mounted hierarchy, still sets
# the .tar.zst export's threads: a quota of one CPU gives one thread.
# The namespace is made with unshare -C -m, and the cgroup hierarchy is
# mounted inside it as a container's is.
. "$VMSYNC_TOP/tests/functions.sh"
requires_root
requires unshare zstd

[ "$(nproc)" -ge 2 ] || skip "one CPU: no quota can lower the count"

# A cgroup with a quota of one CPU, and how to mount its hierarchy: v2 if
# the cpu controller is enabled below the root, else v1's cpu hierarchy.
if grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null; then
	CG=/sys/fs/cgroup/vmsync-test.$$
	MNT=/sys/fs/cgroup
	FS="-t cgroup2 none"
	set_quota() { echo "100000 100000" > "$1/cpu.max"; }
elif [ -w /sys/fs/cgroup/cpu/cgroup.procs ]; then
	CG=/sys/fs/cgroup/cpu/vmsync-test.$$
	MNT=/sys/fs/cgroup/cpu
	FS="-t cgroup -o cpu cgroup"
	set_quota() {
		echo 100000 > "$1/cpu.cfs_period_us"
		echo 100000 > "$1/cpu.cfs_quota_us"
	}
else
	skip "no cgroup with a CPU quota can be made"
fi
mkdir "$CG" || skip "cannot make a cgroup"
cleanup_fn "rmdir $CG 2>/dev/null"
set_quota "$CG"

cd "$TMP" || fail "cd $TMP"
head -c $((8 << 20)) /dev/urandom > vm.img
mkdir cg
# In the cgroup, a new cgroup and mount namespace; the hierarchy mounted
# afresh (its root is then the namespace's cgroup) over the usual place.
cat > inside.sh <<EOF
set -e
mount $FS "$TMP/cg"
mount --bind "$TMP/cg" "$MNT"
grep -q ':/\$' /proc/self/cgroup
exec "$VMSYNC" -v vm.img vm.tar.zst
EOF
sh -c 'echo $$ > "$1/cgroup.procs" && exec unshare -C -m sh inside.sh' \
	sh "$CG" > out 2>&1 || { cat out; skip "cannot make a cgroup namespace"; }
n=$(sed -n 's/.*zstd level 1, \([0-9]*\) compressing thread.*/\1/p' out)
[ -n "$n" ] || { cat out; fail "no thread count in -v"; }
zstd -q -d -c vm.tar.zst | tar -xOf - vm.img | cmp - vm.img ||
	fail "the archive's entry differs from the image"
[ "$n" -eq 1 ] || fail "a container's quota of one CPU: $n threads, want 1"
echo "ok"
