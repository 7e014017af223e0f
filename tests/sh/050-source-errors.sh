#!/usr/bin/env bash
# Proves: a source that cannot be synced exits 2 with a one-line error
# naming it, and neither creates a target nor touches an existing one (its
# index stays clean, so the next real run trusts it and writes nothing):
#  - a missing source, a directory, a character device (/dev/null);
#  - a source the user cannot read (mode 600, run as nobody), while the
#    same run on a readable source works;
#  - a vmdk image without -O raw, refused naming -O raw (it is read
#    through qemu-storage-daemon, guest view only: 194-foreign-formats);
#    --format=raw copies it (or a qcow2) as plain bytes instead.  A vmdk
#    descriptor (monolithicFlat, split extents) without -O raw is refused
#    the same way (read with its extent files: 200-vmdk-descriptors).
#    The same vmdk under a name that does not say so is copied as it is,
#    with one warning: content alone never decides how a file is read.
# With several sources, one bad source makes the run partial (exit 4) and
# the good one is still synced; when every source is bad the exit is 2.
. "$VMSYNC_TOP/tests/functions.sh"
requires_root
requires qemu-img jq setpriv

src=$TMP/disk.img
"$HOLES" make "$src" 64M 0:1M:1 20M:64K:2 63M:1M:3
dir=$TMP/backup
mkdir "$dir"
tgt=$dir/disk.img
idx=$dir/.disk.img.vmsync-index
vs -q "$src" "$tgt"
same "$src" "$tgt"
tsum=$(md5sum < "$tgt")
isum=$(md5sum < "$idx")
export VMSYNC_DEBUG_OPS=$TMP/ops

# The backup is as it was and the next run trusts its index, doing nothing.
untouched() {
	[ "$(md5sum < "$tgt")" = "$tsum" ] || fail "$1: target changed"
	[ "$(md5sum < "$idx")" = "$isum" ] || fail "$1: index changed"
	[ "$(ls -A "$dir" | sort | tr '\n' ' ')" = ".disk.img.vmsync-index disk.img " ] ||
		fail "$1: something was created: $(ls -A "$dir")"
	: > "$TMP/ops"
	sync_stats "$src" "$tgt"
	[ "$(stat_of index)" = trusted ] || fail "$1: index no longer trusted"
	[ ! -s "$TMP/ops" ] || fail "$1: the next run wrote: $(cat "$TMP/ops")"
	tsum=$(md5sum < "$tgt")
	isum=$(md5sum < "$idx")	# that run rewrote the header (times)
}

# Missing: into the directory (a new name) and onto the existing target.
must_fail 2 "^vmsync: $TMP/nosuch.img: .*No such file or directory$" \
	vs "$TMP/nosuch.img" "$dir/"
must_fail 2 "^vmsync: $TMP/nosuch.img: .*No such file or directory$" \
	vs "$TMP/nosuch.img" "$tgt"
untouched missing

# A directory.
mkdir "$TMP/vm"
must_fail 2 "^vmsync: $TMP/vm: .*directory" vs "$TMP/vm" "$tgt"
must_fail 2 "^vmsync: $TMP/vm/: .*directory" vs "$TMP/vm/" "$dir/"
untouched directory

# A character device.
must_fail 2 "^vmsync: /dev/null: .*not a regular file or a block device" \
	vs /dev/null "$tgt"
must_fail 2 "^vmsync: /dev/null: " vs /dev/null "$dir/"
untouched chardev

# Unreadable: root's file with mode 600, synced by nobody into a directory
# nobody may write.  The same run on a readable copy works, so the refusal
# is the file's mode, not the path.
chmod 711 "$TMP"
drop=$TMP/drop
mkdir "$drop"
chmod 777 "$drop"
cp --sparse=always "$src" "$TMP/secret.img"
cp --sparse=always "$src" "$TMP/public.img"
chmod 600 "$TMP/secret.img"
chmod 644 "$TMP/public.img"
as_nobody() {
	env -u VMSYNC_DEBUG_OPS \
	    setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"
}
as_nobody test -w "$drop" || skip "nobody cannot reach $drop"
as_nobody test -r "$TMP/secret.img" && fail "nobody can read a mode 600 file"
must_fail 2 "^vmsync: $TMP/secret.img: .*Permission denied$" \
	as_nobody "$VMSYNC" "$TMP/secret.img" "$drop/"
[ -z "$(ls -A "$drop")" ] || fail "unreadable source: created $(ls -A "$drop")"
as_nobody "$VMSYNC" -q "$TMP/public.img" "$drop/" ||
	fail "nobody cannot sync a readable source"
same "$src" "$drop/public.img"
[ "$(stat -c %U "$drop/public.img")" = nobody ] || fail "target not owned by nobody"

# Image formats read through qemu only as guest disks are refused without
# -O raw, by name, not copied raw.
qemu-img create -q -f qcow2 "$TMP/vm.qcow2" 1G
qemu-img create -q -f vmdk "$TMP/vm.vmdk" 1G
must_fail 2 "^vmsync: $TMP/vm.vmdk: a vmdk image can only be synced as its guest disk; add -O raw\$" \
	vs "$TMP/vm.vmdk" "$tgt"
must_fail 2 "^vmsync: $TMP/vm.vmdk: a vmdk image" vs "$TMP/vm.vmdk" "$dir/"
untouched vmdk
# A descriptor names the files that hold the disk: a vmdk too.
for sub in monolithicFlat twoGbMaxExtentSparse; do
	qemu-img create -q -f vmdk -o subformat=$sub "$TMP/$sub.vmdk" 64M
	head -c 21 "$TMP/$sub.vmdk" | grep -qx "# Disk DescriptorFile" ||
		fail "$sub: qemu-img made no descriptor"
	must_fail 2 "^vmsync: $TMP/$sub.vmdk: a vmdk image can only be synced as its guest disk; add -O raw\$" \
		vs "$TMP/$sub.vmdk" "$dir/"
	untouched "$sub descriptor"
done
for f in qcow2 vmdk; do
	# --format=raw: the file's bytes, as they are.
	sync_stats --format=raw "$TMP/vm.$f" "$TMP/vm.$f.copy"
	[ "$(stat_of status)" -eq 0 ] || fail "--format=raw $f: status"
	same "$TMP/vm.$f" "$TMP/vm.$f.copy"
	sync_stats -f raw "$TMP/vm.$f" "$TMP/vm.$f.copy"
	[ "$(stat_of index)" = trusted ] || fail "--format=raw $f: second run"
	[ "$(stat_of written_bytes)" -eq 0 ] || fail "--format=raw $f: rewritten"
done
# Its content alone decides nothing: copied as raw, said once.
cp "$TMP/vm.vmdk" "$TMP/renamed.img"
vs "$TMP/renamed.img" "$dir/" 2> "$TMP/err" || fail "renamed vmdk: exit $?"
grep -q "^vmsync: warning: $TMP/renamed.img: starts like a vmdk image" \
	"$TMP/err" && [ "$(wc -l < "$TMP/err")" -eq 1 ] ||
	fail "renamed vmdk: not one warning: $(cat "$TMP/err")"
same "$TMP/renamed.img" "$dir/renamed.img"
cp "$TMP/monolithicFlat.vmdk" "$TMP/descriptor.img"
vs "$TMP/descriptor.img" "$dir/" 2> "$TMP/err" || fail "renamed descriptor: exit $?"
grep -q "^vmsync: warning: $TMP/descriptor.img: starts like a vmdk descriptor, but" \
	"$TMP/err" && [ "$(wc -l < "$TMP/err")" -eq 1 ] ||
	fail "renamed descriptor: not one warning: $(cat "$TMP/err")"

# Several sources: the good one is synced, the run is partial.
multi=$TMP/multi
mkdir "$multi"
must_fail 4 "^vmsync: $TMP/nosuch.img: " vs "$src" "$TMP/nosuch.img" "$multi/"
same "$src" "$multi/disk.img"
must_fail 4 "^vmsync: $TMP/vm.vmdk: a vmdk image can only" \
	vs "$TMP/vm.vmdk" "$TMP/public.img" "$multi/"
same "$src" "$multi/public.img"
[ ! -e "$multi/vm.vmdk" ] || fail "a refused source got a target"
# Every source bad: the source error itself.
rc=0
vs "$TMP/nosuch.img" "$TMP/vm.vmdk" "$multi/" 2> "$TMP/err" || rc=$?
[ "$rc" -eq 2 ] || fail "all sources bad: exit $rc, want 2"
[ "$(wc -l < "$TMP/err")" -eq 2 ] || fail "want one line per bad source: $(cat "$TMP/err")"
if [ -e "$multi/nosuch.img" ] || [ -e "$multi/vm.vmdk" ]; then
	fail "all sources bad: target created"
fi
