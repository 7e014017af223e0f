#!/usr/bin/env bash
# Proves: contrib/systemd/vmsync@.service and vmsync@.timer hold only
# unit-file lines (sections, keys, comments): a oneshot service whose
# ExecStart runs vmsync-run where contrib/systemd/README.md installs it, a
# timer wanted by timers.target (systemd-analyze verify of both:
# 173-systemd-analyze.sh); the cron example's lines are valid cron.d
# entries.  The service's ExecStart, run by hand with %i and the installed
# paths replaced, syncs the images its config lists (globs) and writes one
# journal line per image with its priority; a missing source gives exit 4
# (some failed) and a <3> line naming vmsync's exit status, a missing
# destination the first failure's status (3).  The cron line, run with
# cron's environment, syncs quietly and logs one syslog line per image.
# vmsync-run refuses a bad command line or config with exit 1.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires stat
top=$VMSYNC_TOP/contrib

# (a) The units.
for u in "$top/systemd/vmsync@.service" "$top/systemd/vmsync@.timer"; do
	# Sections, keys and comments only.
	bad=$(grep -vnE '^(#.*|\[(Unit|Service|Timer|Install)\]|[A-Za-z]+=.*|)$' "$u") &&
		fail "$u: not a unit file line: $bad"
done
grep -qx 'ExecStart=/usr/local/lib/vmsync/vmsync-run /etc/vmsync/%i.conf' \
	"$top/systemd/vmsync@.service" || fail "ExecStart changed: update this test and the README"
grep -qx 'Type=oneshot' "$top/systemd/vmsync@.service" || fail "not a oneshot service"
grep -qx 'WantedBy=timers.target' "$top/systemd/vmsync@.timer" || fail "timer not wanted by timers.target"

# (b) The cron example: variables, and jobs (commented ones too) with five
# time fields, a user and a command whose program is one of ours.
jobs=0
while IFS= read -r line; do
	case $line in
	''|'# '*|'#') continue ;;
	[A-Z]*=*) continue ;;
	'#'*) line=${line#\#} ;;
	esac
	read -r m h dom mon dow user cmd <<< "$line"
	for f in "$m" "$h" "$dom" "$mon" "$dow"; do
		[[ $f =~ ^[0-9*,/-]+$ ]] || fail "cron: bad time field '$f' in: $line"
	done
	[ "$user" = root ] || fail "cron: user '$user' in: $line"
	case ${cmd%% *} in
	/usr/local/lib/vmsync/vmsync-run) [ -x "$top/systemd/vmsync-run" ] || fail "vmsync-run" ;;
	/usr/local/bin/vmsync-snapper) [ -x "$top/snapper/vmsync-snapper" ] || fail "vmsync-snapper" ;;
	*) fail "cron: unknown program in: $line" ;;
	esac
	jobs=$((jobs + 1))
done < "$top/cron/vmsync.cron"
[ "$jobs" -eq 2 ] || fail "cron: $jobs jobs, want 2"
[ "$(tail -c 1 "$top/cron/vmsync.cron" | od -An -c | tr -d ' ')" = '\n' ] ||
	fail "cron ignores a last line without a newline"

# (c) The service's command line, by hand, as systemd would run it.
mnt=$(mkbtrfs 1G)
btrfs subvolume create "$mnt/images" > /dev/null
mkdir "$mnt/backup" "$TMP/etc"
"$HOLES" make "$mnt/images/a.img" 32M 0:2M:1 20M:1M:2
"$HOLES" make "$mnt/images/b.img" 16M 4M:1M:3
export VMSYNC
cat > "$TMP/etc/t172.conf" <<EOF
SOURCES="$mnt/images/*.img"
DEST=$mnt/backup/
EOF
exec_start=$(sed -n 's/^ExecStart=//p' "$top/systemd/vmsync@.service" |
	sed -e "s|%i|t172|g" -e "s|/etc/vmsync/|$TMP/etc/|g" -e "s|/usr/local/lib/vmsync/|$top/systemd/|")
# service: run ExecStart with stderr as the "journal"; exit status in $rc.
service() {
	local stream
	rc=0
	: > "$TMP/journal"
	stream=$(stat -c '%d:%i' "$TMP/journal")
	# shellcheck disable=SC2086
	JOURNAL_STREAM=$stream $exec_start > "$TMP/out" 2>> "$TMP/journal" || rc=$?
	[ ! -s "$TMP/out" ] || fail "service wrote to stdout: $(cat "$TMP/out")"
}
# journal_has PRIORITY SRC REST
journal_has() {
	grep -qx -- "<$1>$2 -> $mnt/backup/: $3" "$TMP/journal" ||
		{ cat "$TMP/journal" >&2; fail "no journal line <$1>$2 ... $3"; }
}

service
[ "$rc" -eq 0 ] || { cat "$TMP/journal"; fail "service: exit $rc"; }
same "$mnt/images/a.img" "$mnt/backup/a.img"
same "$mnt/images/b.img" "$mnt/backup/b.img"
[ "$(grep -c -- ' -> ' "$TMP/journal")" -eq 2 ] || fail "journal: $(cat "$TMP/journal")"
journal_has 6 "$mnt/images/a.img" 'ok in [0-9]*s'
journal_has 6 "$mnt/images/b.img" 'ok in [0-9]*s'

"$HOLES" fill "$mnt/images/a.img" 1M:64K:4
echo "SOURCES=\"\$SOURCES $mnt/images/missing.img\"" >> "$TMP/etc/t172.conf"
service
[ "$rc" -eq 4 ] || { cat "$TMP/journal"; fail "a missing source: exit $rc, want 4"; }
same "$mnt/images/a.img" "$mnt/backup/a.img"
journal_has 3 "$mnt/images/missing.img" 'failed, exit 2 (source error)'
grep -q "^<3>$mnt/images/missing.img: " "$TMP/journal" || fail "vmsync's error is not in the journal"

sed -i "s|^DEST=.*|DEST=$mnt/nonexistent/deeper/|" "$TMP/etc/t172.conf"
service
[ "$rc" -eq 3 ] || { cat "$TMP/journal"; fail "every image failed: exit $rc, want the first failure's 3"; }
[ "$(grep -c '^<3>.*failed, exit' "$TMP/journal")" -eq 3 ] || fail "journal: $(cat "$TMP/journal")"

# (d) The cron line with cron's environment: nothing on stdout or stderr,
# a syslog line per image (a stand-in logger records them).
mkdir "$TMP/bin"
cat > "$TMP/bin/logger" <<EOF
#!/bin/sh
printf '%s\n' "\$*" >> "$TMP/syslog"
EOF
chmod +x "$TMP/bin/logger"
cat > "$TMP/etc/nightly.conf" <<EOF
SOURCES="$mnt/images/a.img $mnt/images/b.img"
DEST=$mnt/backup/
OPTIONS=--checksum
EOF
"$HOLES" fill "$mnt/images/b.img" 4M:4K:5
cron_cmd=$(grep -E '^[0-9*]' "$top/cron/vmsync.cron" | head -n 1 | cut -f 3 |
	sed -e "s|/usr/local/lib/vmsync/|$top/systemd/|" -e "s|/etc/vmsync/|$TMP/etc/|")
env -i HOME=/root LOGNAME=root SHELL=/bin/sh PATH="$TMP/bin:/usr/bin:/bin" VMSYNC="$VMSYNC" \
	/bin/sh -c "$cron_cmd" > "$TMP/cron.out" 2>&1 || { cat "$TMP/cron.out"; fail "cron job failed"; }
[ ! -s "$TMP/cron.out" ] || fail "the cron job printed (cron would mail it): $(cat "$TMP/cron.out")"
same "$mnt/images/a.img" "$mnt/backup/a.img"
same "$mnt/images/b.img" "$mnt/backup/b.img"
[ "$(grep -c -- "^-t vmsync -p user.info -- $mnt/images/[ab].img -> $mnt/backup/: ok in " "$TMP/syslog")" -eq 2 ] ||
	fail "syslog: $(cat "$TMP/syslog")"

# (e) vmsync-run's own errors.
must_fail 1 '^usage: vmsync-run CONFIG$' "$top/systemd/vmsync-run"
must_fail 1 'cannot read the configuration$' "$top/systemd/vmsync-run" "$TMP/etc/none.conf"
echo 'DEST=/x/' > "$TMP/etc/empty.conf"
must_fail 1 'SOURCES and DEST must be set$' "$top/systemd/vmsync-run" "$TMP/etc/empty.conf"
