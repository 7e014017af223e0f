#!/usr/bin/env bash
# Proves: a signal stops vmsync while it maps a huge image ahead of the
# copy, before anything is written.  Before a sync the whole source is
# mapped twice (a format with metadata is validated, then the data bytes
# are counted for the space check); an archive entry may declare 2^62
# bytes, and a raw file on btrfs may be that large too, which took minutes
# (per 256 MiB window) in loops that never looked at SIGINT or SIGTERM.
#  - A pax sparse entry of 2^62 bytes with 4 KiB of data, imported into a
#    directory holding a backup of that name: SIGINT, then SIGTERM, stop
#    the run within seconds, exit 4 with one "interrupted" line, and the
#    backup and its index are as they were.
#  - A raw 2^62-byte file (1 MiB of data) on btrfs, not validated, so
#    stopped while its data bytes are counted: the same, and no target is
#    created.
. "$VMSYNC_TOP/tests/functions.sh"
requires python3
requires_btrfs

cd "$TMP" || fail "cd $TMP"

MKSPARSE="python3 $VMSYNC_TOP/tests/helpers/mksparse.py"

# interrupt SIG ARGS...: run vmsync ARGS in the background and send SIG
# once it handles SIGINT and SIGTERM; it must end within 10 s.  Its exit
# status in $rc, its stderr in $TMP/err.
interrupt() {
	local sig=$1 pid mask
	shift
	"$VMSYNC" --no-progress "$@" 2> "$TMP/err" &
	pid=$!
	cleanup_fn "kill -9 $pid 2>/dev/null"
	for _ in $(seq 500); do
		mask=$(awk '/^SigCgt:/ { print $2 }' "/proc/$pid/status" \
			2> /dev/null) || break
		[ -n "$mask" ] && [ $((16#$mask & 0x4002)) -eq $((0x4002)) ] &&
			break
		sleep 0.01
	done
	sleep 0.3
	kill -"$sig" "$pid" 2> /dev/null || true
	for _ in $(seq 100); do
		kill -0 "$pid" 2> /dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2> /dev/null; then
		kill -9 "$pid"
		wait "$pid" 2> /dev/null || true
		fail "SIG$sig ignored for 10 s: vmsync $*"
	fi
	rc=0
	wait "$pid" || rc=$?
	[ "$rc" -eq 4 ] || { cat "$TMP/err" >&2; fail "SIG$sig: exit $rc, not 4: vmsync $*"; }
	grep -q '^vmsync: .*: interrupted$' "$TMP/err" ||
		{ cat "$TMP/err" >&2; fail "SIG$sig: no 'interrupted' line: vmsync $*"; }
	[ "$(wc -l < "$TMP/err")" -eq 1 ] ||
		{ cat "$TMP/err" >&2; fail "SIG$sig: not a one-line error: vmsync $*"; }
}

# (1) An archive entry of 2^62 bytes onto an existing backup.
head -c 1M /dev/urandom > vm.img
mkdir dir
vs vm.img dir/
cp dir/.vm.img.vmsync-index index.keep
before=$(cd dir && find . -printf '%p %s %T@\n' | sort)
$MKSPARSE max.tar vm.img $((1 << 62)) 0:4096
for sig in INT TERM; do
	interrupt "$sig" max.tar dir/
	after=$(cd dir && find . -printf '%p %s %T@\n' | sort)
	[ "$after" = "$before" ] || fail "SIG$sig: dir/ changed: $after"
	cmp dir/vm.img vm.img || fail "SIG$sig: dir/vm.img changed"
	cmp dir/.vm.img.vmsync-index index.keep || fail "SIG$sig: index changed"
done

# (2) A raw file of 2^62 bytes: its data bytes are counted, unvalidated.
mnt=$(mkbtrfs 1G)
truncate -s $((1 << 62)) "$mnt/huge.img" 2> /dev/null ||
	skip "no 2^62-byte sparse file on btrfs here"
head -c 1M /dev/urandom | dd of="$mnt/huge.img" conv=notrunc status=none
mkdir out
interrupt INT "$mnt/huge.img" out/
[ -z "$(ls -A out)" ] || fail "a target was created: $(ls -A out)"
