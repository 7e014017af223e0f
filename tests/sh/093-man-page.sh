#!/usr/bin/env bash
# Proves: the man page is clean mdoc (no groff warnings), renders, documents
# every long option that --help lists, and every exit status 0-6.
. "$VMSYNC_TOP/tests/functions.sh"
requires groff man

page=$VMSYNC_TOP/man/vmsync.1
groff -mandoc -ww -z "$page" 2> "$TMP/warn"
[ ! -s "$TMP/warn" ] || fail "groff warnings: $(cat "$TMP/warn")"
MANWIDTH=80 man -l "$page" > "$TMP/page" 2>&1
grep -q 'EXIT STATUS' "$TMP/page" || fail "man -l did not render"

"$VMSYNC" --help | grep -oE -- '--[a-z][a-z-]+' | sort -u > "$TMP/opts"
[ "$(wc -l < "$TMP/opts")" -ge 12 ] || fail "too few options in --help"
while read -r opt; do
	grep -q -- "^.It.* Fl -${opt#--}" "$page" || fail "$opt is not documented"
done < "$TMP/opts"

sed -n '/^.Sh EXIT STATUS/,/^.Sh /p' "$page" > "$TMP/exit"
for code in 0 1 2 3 4 5 6; do
	grep -q "^.It $code\$" "$TMP/exit" || fail "exit status $code is not documented"
done
grep -q 'VS_EXIT_LOCKED = 6' "$VMSYNC_TOP/src/vmsync.h" || fail "exit codes changed in vmsync.h"
