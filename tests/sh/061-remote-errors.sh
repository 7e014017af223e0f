#!/usr/bin/env bash
# Proves: what goes wrong on the remote side, or on the way, ends the run
# with one line on stderr and the documented exit code, and never damages
# the previous backup:
#  - the server's own errors keep their code: a missing remote directory
#    (3), a missing remote source (2), a target locked by another run (6),
#    no space left on the remote filesystem (3), a directory the remote
#    user may not write (3, "Permission denied");
#  - a remote command that is not vmsync, a stream cut after N bytes in
#    either direction and a byte flipped on the wire, at many N: exit 3
#    for a push, 2 for a pull; a read-only snapshot of the target taken
#    before the first of them stays equal to the old image throughout, and
#    the next run completes.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires perl flock setpriv

mnt=$(mkbtrfs 1G)
M=1048576
FAULT=$VMSYNC_TOP/tests/helpers/faultsh
src=$TMP/disk.img
"$HOLES" make "$src" 64M 0:4M:1 20M:8M:2 60M:1M:3
btrfs subvolume create -q "$mnt/vol" 2>/dev/null || btrfs subvolume create "$mnt/vol" >/dev/null
mkdir "$mnt/vol/b"

must_fail 3 "^vmsync: host: .*nosuch.*" rvs "$src" "host:$mnt/nosuch/dir/"
must_fail 2 "^vmsync: host: .*nosuch.img" rvs "host:$TMP/nosuch.img" "$TMP/"
rvs -q "$src" "host:$mnt/vol/b/"
same "$src" "$mnt/vol/b/disk.img"

# Locked by another run.
flock "$mnt/vol/b/disk.img" sleep 2 &
lockpid=$!
sleep 0.5
must_fail 6 "^vmsync: host: .*in use by another" rvs "$src" "host:$mnt/vol/b/"
wait "$lockpid"

# No space on the remote side.
small=$(mkbtrfs 256M)
"$HOLES" make "$TMP/huge.img" 1G 0:400M:9
must_fail 3 "^vmsync: host: .*No space left" rvs "$TMP/huge.img" "host:$small/"
rm -f "$TMP/huge.img"

# The remote user (nobody) may not write there.
nobody_sh=$TMP/nobody-sh
cat > "$nobody_sh" <<EOS
#!/bin/sh
shift
exec setpriv --reuid=nobody --regid=nogroup --clear-groups -- sh -c "\$*"
EOS
chmod +x "$nobody_sh"
mkdir "$mnt/rootonly"
chmod 755 "$mnt/rootonly"
chmod 711 "$TMP"
must_fail 3 "^vmsync: host: .*Permission denied" "$VMSYNC" -e "$nobody_sh" \
	--remote-vmsync "$VMSYNC" "$src" "host:$mnt/rootonly/"
[ -z "$(ls -A "$mnt/rootonly")" ] || fail "permission: something was written"

# Not a vmsync on the other end.
must_fail 3 "^vmsync: host: " vs -e "sh -c 'echo hello; exit 0' --" "$src" "host:$mnt/vol/b/"

# Faults on the wire: a changed source, a snapshot of the old backup.
cp "$src" "$TMP/old.img"
head -c $((2 * M)) /dev/urandom | dd of="$src" bs=1M seek=21 conv=notrunc status=none
"$HOLES" fill "$src" 40M:1M:8
btrfs subvolume snapshot -r "$mnt/vol" "$mnt/before" >/dev/null
for spec in cut-in:0 cut-in:20 cut-in:100 cut-in:1500 cut-out:0 cut-out:30 \
    cut-out:200 cut-out:5000 cut-out:70000 cut-out:1100000 \
    cut-out:2200000 flip-in:9 flip-in:40 flip-in:100 flip-in:140; do
	mode=${spec%%:*} at=${spec#*:}
	rc=0
	"$VMSYNC" -e "$FAULT $mode $at" --remote-vmsync "$VMSYNC" "$src" \
		"host:$mnt/vol/b/" 2> "$TMP/err" || rc=$?
	[ "$rc" -eq 3 ] || { cat "$TMP/err"; fail "$spec: exit $rc, want 3"; }
	[ "$(wc -l < "$TMP/err")" -eq 1 ] || { cat "$TMP/err"; fail "$spec: not one line"; }
	grep -q "^vmsync: host: " "$TMP/err" || { cat "$TMP/err"; fail "$spec: message"; }
	# Runs write in place: the snapshot must not see any of it.
	same "$TMP/old.img" "$mnt/before/b/disk.img"
done
# Pull through a cut stream: a source error.
must_fail 2 "^vmsync: host: " "$VMSYNC" -e "$FAULT cut-in 5000" \
	--remote-vmsync "$VMSYNC" "host:$src" "$TMP/"
# The next run completes.
rvs -q "$src" "host:$mnt/vol/b/"
same "$src" "$mnt/vol/b/disk.img"
rvs -q "$src" "host:$mnt/vol/b/"
