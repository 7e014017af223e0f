#!/usr/bin/env bash
# Proves: remote sync through a real sshd on a loopback address, with its
# own host key, user keys and configuration: push and pull give equal
# content and allocation on the receiving side (holes punched there too),
# an unchanged run moves almost nothing, and a key restricted by an
# authorized_keys forced command (vmsync --server --root) is confined.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires jq

mnt=$(mkbtrfs 1G)
d=$TMP/ssh
mkdir "$mnt/root"
start_sshd "$d" "$(printf 'command="%s --server --root=%s",restrict' "$VMSYNC" "$mnt/root")"
opts=$SSH_OPTS

sshvs() {	# vmsync through ssh with the user key
	"$VMSYNC" -e "ssh $opts -i $d/userkey" --remote-vmsync "$VMSYNC" "$@"
}
src=$TMP/disk.img
"$HOLES" make "$src" 128M 0:4M:1 60M:8M:2 127M:1M:3
mkdir "$mnt/backup" "$mnt/restore"

sshvs -q "$src" "root@127.0.0.1:$mnt/backup/"
same "$src" "$mnt/backup/disk.img"
diff <(data_ranges "$src") <(data_ranges "$mnt/backup/disk.img") || fail "push: allocation"
fallocate -p -o $((60 * 1048576)) -l $((4 * 1048576)) "$src"
STATS=$(sshvs --json "$src" "root@127.0.0.1:$mnt/backup/")
[ "$(stat_of punched_bytes)" -eq $((4 * 1048576)) ] || fail "push: punched $(stat_of punched_bytes)"
diff <(data_ranges "$src") <(data_ranges "$mnt/backup/disk.img") || fail "push: allocation after punch"
STATS=$(sshvs --json "$src" "root@127.0.0.1:$mnt/backup/")
total=$(( $(stat_of wire_sent_bytes) + $(stat_of wire_received_bytes) ))
[ "$total" -lt 8192 ] || fail "unchanged push moved $total bytes"

sshvs -q "root@127.0.0.1:$mnt/backup/disk.img" "$mnt/restore/"
same "$src" "$mnt/restore/disk.img"
diff <(data_ranges "$src") <(data_ranges "$mnt/restore/disk.img") || fail "pull: allocation"

# The forced-command key: confined to $mnt/root whatever it asks for.
fvs() {
	"$VMSYNC" -e "ssh $opts -i $d/forcedkey" --remote-vmsync /bin/false "$@"
}
fvs -q "$src" "root@127.0.0.1:$mnt/root/"
same "$src" "$mnt/root/disk.img"
must_fail 1 "outside" fvs "$src" "root@127.0.0.1:$mnt/backup/other.img"
[ ! -e "$mnt/backup/other.img" ] || fail "forced key wrote outside its root"
