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

# A pax 1.0 sparse entry NAME of REALSIZE bytes whose one data run is
# LEN bytes at OFF: mksparse OUT NAME REALSIZE OFF LEN.
mksparse() {
	python3 - "$@" <<'EOF'
import sys
out, name, realsize, off, ln = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
def hdr(n, size, t):
    h = bytearray(512)
    h[0:len(n)] = n; h[100:108] = b'0000644\0'; h[108:116] = b'0000000\0'; h[116:124] = b'0000000\0'
    h[124:136] = b'%011o\0' % size; h[136:148] = b'%011o\0' % 1700000000; h[148:156] = b' ' * 8
    h[156:157] = t; h[257:263] = b'ustar\0'; h[263:265] = b'00'
    h[148:156] = b'%06o\0 ' % sum(h); return bytes(h)
pad = lambda b: b + b'\0' * (-len(b) % 512)
def rec(k, v):
    body = b' %s=%s\n' % (k, v); n = len(body) + 2
    while len(str(n)) + len(body) != n: n += 1
    return b'%d' % n + body
pax = b''.join(rec(k, v) for k, v in [(b'GNU.sparse.major', b'1'), (b'GNU.sparse.minor', b'0'),
      (b'GNU.sparse.name', name), (b'GNU.sparse.realsize', b'%d' % realsize)])
data = pad(b'1\n%d\n%d\n' % (off, ln)) + b'A' * ln
open(out, 'wb').write(hdr(b'PaxHeader', len(pax), b'x') + pad(pax) +
    hdr(b'GNUSparseFile.0/' + name, len(data), b'0') + pad(data) + b'\0' * 1024)
EOF
}

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
mksparse max.tar vm.img $((1 << 62)) 0 4096
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
