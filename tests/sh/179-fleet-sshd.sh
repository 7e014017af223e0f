#!/usr/bin/env bash
# Proves: one backup host serves a fleet.  Eight clients push two images
# each at once, with --snapshot, through a real sshd whose forced command
# is vmsync --server --root; twice, with changes in between.  Every run
# exits 0; every target equals its source; each round adds exactly eight
# snapshots (one per run), none half-made, every image in every snapshot
# with a clean index and equal to one of its source's versions, and each
# client's last snapshot holding both its images as last pushed.  Every
# server process (one per session) stays under 64 MiB of peak RSS and
# 32 open files, measured by a wrapper around it.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires python3 od

mnt=$(mkbtrfs 2G)
root=$mnt/root
mkdir "$root"
btrfs subvolume create "$root/backup" > /dev/null
snaps=$root/backup/.vmsync-snapshots
cat > "$TMP/measure.py" <<'EOP'
import os, resource, subprocess, sys, time
log = sys.argv[1]
p = subprocess.Popen(sys.argv[2:])
fds = 0
while p.poll() is None:
    try:
        fds = max(fds, len(os.listdir('/proc/%d/fd' % p.pid)))
    except OSError:
        pass
    time.sleep(0.005)
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
with open(log, 'a') as f:
    f.write('%d %d %d\n' % (rss, fds, p.returncode))
sys.exit(p.returncode)
EOP
printf '#!/bin/sh\nexec python3 %s %s %s --server --root=%s\n' "$TMP/measure.py" \
	"$TMP/server.log" "$VMSYNC" "$root" > "$TMP/serve"
chmod +x "$TMP/serve"
start_sshd "$TMP/ssh" "command=\"$TMP/serve\",restrict"
fleet() {	# fleet ROUND: eight clients at once
	local i pids=()
	for i in $(seq 1 8); do
		"$VMSYNC" -e "ssh $SSH_OPTS -i $TMP/ssh/forcedkey" \
			--remote-vmsync vmsync -q --no-progress --snapshot \
			"$TMP/a$i.img" "$TMP/b$i.img" root@127.0.0.1:backup/ \
			2> "$TMP/err.$i" &
		pids+=($!)
	done
	for i in $(seq 1 8); do
		wait "${pids[$((i - 1))]}" ||
			fail "round $1, client $i: exit $?: $(cat "$TMP/err.$i")"
	done
}
mkdir "$TMP/v1" "$TMP/v2"
for i in $(seq 1 8); do
	"$HOLES" make "$TMP/a$i.img" 32M 0:4M:$i 12M:4M:$((i + 10)) 31M:1M:$((i + 20))
	"$HOLES" make "$TMP/b$i.img" 32M 0:2M:$((i + 30)) 20M:6M:$((i + 40))
	cp "$TMP/a$i.img" "$TMP/b$i.img" "$TMP/v1/"
done
fleet 1
[ "$(ls -A "$snaps" | wc -l)" -eq 8 ] || fail "round 1: $(ls -A "$snaps" | wc -l) snapshots, not 8"
for i in $(seq 1 8); do
	"$HOLES" fill "$TMP/a$i.img" 2M:256K:$((i + 50)) 12M:64K:$((i + 60))
	fallocate -p -o $((20 * 1048576)) -l 1048576 "$TMP/b$i.img"
	cp "$TMP/a$i.img" "$TMP/b$i.img" "$TMP/v2/"
done
fleet 2

for i in $(seq 1 8); do
	same "$TMP/a$i.img" "$root/backup/a$i.img"
	same "$TMP/b$i.img" "$root/backup/b$i.img"
done
all=$(ls -A "$snaps")
[ "$(printf '%s\n' "$all" | wc -l)" -eq 16 ] || fail "not 16 snapshots: $all"
! printf '%s\n' "$all" | grep -q '^\.tmp-' || fail "debris: $all"
for s in $all; do
	for img in "$snaps/$s"/*.img; do
		n=$(basename "$img")
		flags=$(od -An -tu4 -j20 -N4 "$snaps/$s/.$n.vmsync-index")
		[ $((flags & 1)) -eq 0 ] || fail "$s/$n: dirty index in a snapshot"
		cmp -s "$img" "$TMP/v1/$n" || cmp -s "$img" "$TMP/v2/$n" ||
			fail "$s/$n: not a version of its source"
	done
done
for i in $(seq 1 8); do
	found=
	for s in $(printf '%s\n' "$all" | tail -8); do
		cmp -s "$snaps/$s/a$i.img" "$TMP/v2/a$i.img" &&
			cmp -s "$snaps/$s/b$i.img" "$TMP/v2/b$i.img" && found=$s
	done
	[ -n "$found" ] || fail "client $i: no round-2 snapshot holds both its images"
done
[ "$(wc -l < "$TMP/server.log")" -ge 32 ] || fail "measured $(wc -l < "$TMP/server.log") server sessions, not 32 or more"
read -r rss fds _ < <(sort -n "$TMP/server.log" | tail -1)
maxfds=$(awk '$2 > m { m = $2 } END { print m }' "$TMP/server.log")
[ "$rss" -lt 65536 ] || fail "a server peaked at $rss KiB"
[ "$maxfds" -lt 32 ] || fail "a server held $maxfds files open"
echo "16 targets, 16 snapshots; servers peaked at $rss KiB and $maxfds files"
