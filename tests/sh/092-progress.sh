#!/usr/bin/env bash
# Proves: --progress draws a progress line (bytes done, rate, ETA) on stderr,
# which ends as a summary line (time, bytes read, written, punched);
# it is on by default when stderr is a terminal and off otherwise; --quiet
# and --no-progress keep the terminal clean.
. "$VMSYNC_TOP/tests/functions.sh"
requires script

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
