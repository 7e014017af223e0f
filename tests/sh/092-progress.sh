#!/usr/bin/env bash
# Proves: --progress draws a progress line (bytes done, rate, ETA) on stderr,
# which ends as a summary line (time, bytes read, written, punched);
# it is on by default when stderr is a terminal and off otherwise; --quiet
# and --no-progress keep the terminal clean.  --stats of a qcow2 in the
# file view says the file's size and the guest disk's virtual size apart
# (locally and pushed); the guest view has only the virtual size.
. "$VMSYNC_TOP/tests/functions.sh"
requires script qemu-img qemu-io

src=$TMP/disk.img
"$HOLES" make "$src" 64M 0:4M:1 32M:4M:2

vs --progress "$src" "$TMP/a.img" 2> "$TMP/err"
grep -q 'ETA' "$TMP/err" || fail "--progress drew no ETA"
# The line ends as a summary that stays on the terminal.
tail -c 200 "$TMP/err" | tr '\r' '\n' | tail -1 |
	grep -Eq "^$src: done in [0-9.]+ s: read 8.00 MiB, wrote 8.00 MiB, punched 0 B.\[K$" ||
	fail "--progress left no summary: $(tail -c 200 "$TMP/err" | od -c | tail -4)"
grep -q '/s ETA' "$TMP/err" || fail "--progress shows no rate"

# Not a terminal: no progress by default.
vs "$src" "$TMP/b.img" 2> "$TMP/err"
[ ! -s "$TMP/err" ] || fail "progress drawn to a non-terminal: $(cat "$TMP/err")"

# A terminal (script(1) gives one): progress by default, none with -q.
script -qec "'$VMSYNC' '$src' '$TMP/c.img'" /dev/null > "$TMP/tty" < /dev/null
grep -q 'ETA' "$TMP/tty" || fail "no progress on a terminal by default"
script -qec "'$VMSYNC' -q '$src' '$TMP/d.img'" /dev/null > "$TMP/tty" < /dev/null
! grep -q 'ETA' "$TMP/tty" || fail "progress drawn with --quiet"
script -qec "'$VMSYNC' --no-progress '$src' '$TMP/e.img'" /dev/null > "$TMP/tty" < /dev/null
! grep -q 'ETA' "$TMP/tty" || fail "progress drawn with --no-progress"
for f in a b c d e; do same "$src" "$TMP/$f.img"; done

# --stats: "file size:" is the file synced, "virtual size:" the guest disk.
q=$TMP/vm.qcow2
qemu-img create -q -f qcow2 "$q" 1G
qemu-io -f qcow2 -c "write -P 7 0 3M" "$q" > /dev/null
fsize=$(stat -c %s "$q")
mkdir "$TMP/qb" "$TMP/qp" "$TMP/ql"
for how in local push pull; do
	case $how in
	local) vs --stats "$q" "$TMP/qb/" > "$TMP/stats" ;;
	push) rvs --stats "$q" "host:$TMP/qp/" > "$TMP/stats" ;;
	pull) rvs --stats "host:$q" "$TMP/ql/" > "$TMP/stats" ;;
	esac
	grep -Eq "^  file size: +[0-9.]+ MiB  \($fsize bytes\)$" "$TMP/stats" &&
		grep -Eq "^  virtual size: +1.00 GiB  \(1073741824 bytes\)$" "$TMP/stats" ||
		{ cat "$TMP/stats"; fail "$how file view: sizes not told apart"; }
done
vs --stats -O raw "$q" "$TMP/qb/" > "$TMP/stats"
grep -Eq "^  virtual size: +1.00 GiB  \(1073741824 bytes\)$" "$TMP/stats" &&
	! grep -q "file size:" "$TMP/stats" ||
	{ cat "$TMP/stats"; fail "guest view: wrong sizes"; }
