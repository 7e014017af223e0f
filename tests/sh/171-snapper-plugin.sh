#!/usr/bin/env bash
# Proves: the snapper plugin contrib/snapper/50-vmsync, installed in
# /usr/lib/snapper/plugins, makes `snapper --no-dbus -c CFG create` sync the
# configured images of CFG's subvolume from the new snapshot to the
# destination: relative names and globs, the backup equal to the
# snapshot's image, one line per image in the log file and in syslog (a
# stand-in logger), a missing image reported.  A later snapshot of a
# changed image syncs the new content, with --since the same image in the
# newest older snapshot that has it (none for a new image), and change
# detection takes effect: with options = --json, the JSON vmsync prints
# lands in the log, and there most of the changed image and all of the
# unchanged one were skipped, not read (skipped_bytes), the new image read
# whole.  Other actions
# and configs the file does not name are left alone.  By default the sync
# runs detached and snapper returns at once; while a sync of the config
# holds its lock a new snapshot is skipped, not waited for; a failed sync
# (no destination) is logged with vmsync's exit status, and snapper
# succeeds in every case.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires snapper jq flock setsid
. "$VMSYNC_TOP/tests/helpers/snapper.sh"

mnt=$(mkbtrfs 1G)
btrfs subvolume create "$mnt/images" > /dev/null
btrfs subvolume create "$mnt/other" > /dev/null
mkdir "$mnt/images/vms" "$mnt/backup"
"$HOLES" make "$mnt/images/web.img" 64M 0:4M:1 40M:2M:2
"$HOLES" make "$mnt/images/vms/db.img" 32M 1M:1M:3
"$HOLES" make "$mnt/other/x.img" 8M 0:1M:4
SNCFG=$(mksnapper "vmsync-t171-$$" "$mnt/images")
other=$(mksnapper "vmsync-t171-b-$$" "$mnt/other")
snapdir=$mnt/images/.snapshots
lockfile=/run/lock/vmsync-snapper.$SNCFG.lock
[ -d /run/lock ] || lockfile=/tmp/vmsync-snapper.$SNCFG.lock
cleanup_fn "rm -f '$lockfile'"

plugdir=/usr/lib/snapper/plugins
if [ ! -d "$plugdir" ]; then
	mkdir -p "$plugdir"
	cleanup_fn "rmdir '$plugdir' 2>/dev/null"
fi
plugin=$plugdir/50-vmsync-t171-$$
install -m 755 "$VMSYNC_TOP/contrib/snapper/50-vmsync" "$plugin"
cleanup_fn "rm -f '$plugin'"

# Stand-ins: a logger that records its arguments, and a vmsync that
# records its own before running the real one.
mkdir "$TMP/bin"
export SYSLOG=$TMP/syslog ARGS=$TMP/args REAL_VMSYNC=$VMSYNC
cat > "$TMP/bin/logger" <<'EOF'
#!/bin/sh
printf '%s\n' "$*" >> "$SYSLOG"
EOF
cat > "$TMP/bin/vmsync" <<'EOF'
#!/bin/sh
printf '%s\n' "$*" >> "$ARGS"
exec "$REAL_VMSYNC" "$@"
EOF
chmod +x "$TMP/bin/logger" "$TMP/bin/vmsync"
export PATH=$TMP/bin:$PATH
export VMSYNC_SNAPPER_CONF=$TMP/snapper.conf
log=$TMP/plugin.log
: > "$log"
: > "$ARGS"

# conf [wait] [DEST] [OPTIONS]: the plugin's configuration file.
conf() {
	cat > "$VMSYNC_SNAPPER_CONF" <<-EOF
	# test configuration
	log = $log

	[vmsync-t171-none-$$]
	images = *.img
	dest = $mnt/backup/

	[$SNCFG]
	images = *.img  vms/db.img gone.img
	dest = ${2:-$mnt/backup/}
	${1:+wait = yes}
	${3:+options = $3}
	EOF
}

# create [VMSYNC]: a snapshot of the images subvolume through snapper, the
# plugin run with VMSYNC (default: the stand-in, found in PATH).
create() {
	local n
	n=$(VMSYNC=${1:-vmsync} sn create --print-number -d test) || fail "snapper create failed"
	echo "$n"
}

logged() {
	grep -qF -- "$1" "$log" || { cat "$log" >&2; fail "not logged: $1"; }
}

# logged_stat NUM REL KEY: KEY of the image in the JSON that vmsync --json
# printed when syncing REL from snapshot NUM, as the plugin logged it
# ("DATE TIME [CFG #NUM] REL: {...}").
logged_stat() {
	local line v
	line=$(grep -F -- "[$SNCFG #$1] $2: {" "$log") ||
		{ cat "$log" >&2; fail "no JSON logged for #$1 $2"; }
	v=$(printf '%s\n' "${line#*"] $2: "}" | jq -r ".images[0].$3") || v=
	case $v in '' | null) fail "#$1 $2: no $3 in: $line" ;; esac
	echo "$v"
}

conf wait
n1=$(create)
logged "[$SNCFG #$n1] web.img -> $mnt/backup/: ok in "
logged "[$SNCFG #$n1] vms/db.img -> $mnt/backup/: ok in "
logged "[$SNCFG #$n1] gone.img: no such image in the snapshot"
same "$snapdir/$n1/snapshot/web.img" "$mnt/backup/web.img"
same "$snapdir/$n1/snapshot/vms/db.img" "$mnt/backup/db.img"
[ "$(grep -c -- '-t vmsync .*-> .*: ok in' "$SYSLOG")" -eq 2 ] ||
	fail "syslog: $(cat "$SYSLOG")"
grep -q -- '--since' "$ARGS" && fail "first sync with --since: $(cat "$ARGS")"
grep -qx -- "--no-progress $snapdir/$n1/snapshot/web.img $mnt/backup/" "$ARGS" ||
	fail "vmsync arguments: $(cat "$ARGS")"

# The image changes and a new one appears: the next snapshot syncs both,
# --since the previous snapshot's image where there is one.  vmsync's
# --json output goes to the log.
conf wait "" --json
"$HOLES" fill "$mnt/images/web.img" 41M:1M:5 2M:64K:6
"$HOLES" make "$mnt/images/new.img" 16M 0:1M:7
: > "$ARGS"
n2=$(create)
same "$snapdir/$n2/snapshot/web.img" "$mnt/backup/web.img"
same "$mnt/images/web.img" "$mnt/backup/web.img"
cmp -s "$snapdir/$n1/snapshot/web.img" "$mnt/backup/web.img" && fail "web.img did not change"
same "$snapdir/$n2/snapshot/new.img" "$mnt/backup/new.img"
grep -qx -- "--no-progress --since $snapdir/$n1/snapshot/web.img --json $snapdir/$n2/snapshot/web.img $mnt/backup/" "$ARGS" ||
	fail "web.img not synced --since snapshot $n1: $(cat "$ARGS")"
grep -qx -- "--no-progress --json $snapdir/$n2/snapshot/new.img $mnt/backup/" "$ARGS" ||
	fail "new.img: $(cat "$ARGS")"
logged "[$SNCFG #$n2] web.img -> $mnt/backup/: ok in "
logged ", since #$n1"
# Change detection: of web.img's 6 MiB of data, 1 MiB + 64 KiB changed;
# the rest, at least half the data, is skipped, and read + skipped cover
# it.  db.img did not change: all skipped, nothing read.  new.img, without
# --since, is read whole.
d=$(logged_stat "$n2" web.img data_bytes)
r=$(logged_stat "$n2" web.img read_bytes)
s=$(logged_stat "$n2" web.img skipped_bytes)
echo "#$n2 web.img: data $d, read $r, skipped $s"
[ "$(logged_stat "$n2" web.img status)" -eq 0 ] || fail "web.img: status not 0"
[ "$s" -gt 0 ] || fail "web.img --since #$n1: nothing skipped (read $r of $d)"
[ $((2 * s)) -ge "$d" ] || fail "web.img: skipped $s, less than half of $d"
[ $((r + s)) -ge "$d" ] || fail "web.img: read $r + skipped $s < data $d"
[ "$r" -lt "$d" ] || fail "web.img: read $r, all of $d"
d=$(logged_stat "$n2" vms/db.img data_bytes)
[ "$(logged_stat "$n2" vms/db.img skipped_bytes)" -eq "$d" ] ||
	fail "db.img unchanged: skipped $(logged_stat "$n2" vms/db.img skipped_bytes) of $d"
[ "$(logged_stat "$n2" vms/db.img read_bytes)" -eq 0 ] ||
	fail "db.img unchanged: read $(logged_stat "$n2" vms/db.img read_bytes)"
[ "$(logged_stat "$n2" new.img skipped_bytes)" -eq 0 ] ||
	fail "new.img skipped $(logged_stat "$n2" new.img skipped_bytes) bytes"
[ "$(logged_stat "$n2" new.img read_bytes)" -eq "$(logged_stat "$n2" new.img data_bytes)" ] ||
	fail "new.img: not read whole"

# Other actions, and configs the file does not name, are left alone.
lines=$(wc -l < "$log")
sn delete "$n1"
snapper --no-dbus -c "$other" create -d test
[ "$(wc -l < "$log")" -eq "$lines" ] || fail "acted on: $(tail -n +$((lines + 1)) "$log")"
[ ! -e "$mnt/backup/x.img" ] || fail "synced an image of another config"

# Detached (the default): snapper returns, the sync follows.  Under
# systemd it runs in a unit of its own, without this test's environment:
# the real vmsync, by its path.
conf
"$HOLES" fill "$mnt/images/web.img" 10M:1M:8
n3=$(create "$REAL_VMSYNC")
for _ in $(seq 600); do
	grep -qF "[$SNCFG #$n3] web.img -> " "$log" && break
	sleep 0.1
done
logged "[$SNCFG #$n3] web.img -> $mnt/backup/: ok in "
logged "since #$n2"
flock -w 60 "$lockfile" true || fail "the detached sync did not end"
same "$snapdir/$n3/snapshot/web.img" "$mnt/backup/web.img"

# A sync still running (its lock held) makes a new snapshot skip, at once.
conf wait
"$HOLES" fill "$mnt/images/web.img" 20M:1M:9
exec 8>> "$lockfile"
flock -n 8 || fail "lock taken"
n4=$(create)
exec 8>&-
logged "[$SNCFG #$n4] skipped: the sync of an earlier snapshot still runs"
same "$snapdir/$n3/snapshot/web.img" "$mnt/backup/web.img"

# A failed sync is logged with vmsync's exit status; snapper succeeds.
conf wait "$mnt/nonexistent/deeper/"
n5=$(create)
logged "[$SNCFG #$n5] web.img -> $mnt/nonexistent/deeper/: failed, exit 3 (target error), since #$n4"
grep -q -- "-p user.err -- \[$SNCFG #$n5\] web.img -> .*failed, exit 3" "$SYSLOG" ||
	fail "syslog: $(cat "$SYSLOG")"
cat "$log"
