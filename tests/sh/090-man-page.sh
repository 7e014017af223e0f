#!/usr/bin/env bash
# Proves: man/vmsync.1 is mdoc that groff formats without a warning; it
# documents every option that --help lists (each short/long pair on one .It
# line) and no option that --help does not list; and its EXIT STATUS section
# lists exactly the exit codes of enum vs_exit (src/vmsync.h).
. "$VMSYNC_TOP/tests/functions.sh"
requires groff

page=$VMSYNC_TOP/man/vmsync.1
[ -s "$page" ] || fail "$page is missing"

# (a) No groff warning of any kind.
groff -mandoc -ww -z "$page" > "$TMP/warn" 2>&1 || fail "groff failed: $(cat "$TMP/warn")"
[ ! -s "$TMP/warn" ] || fail "groff warnings: $(cat "$TMP/warn")"
if command -v man >/dev/null 2>&1; then
	MANWIDTH=80 man -l "$page" > "$TMP/page" 2> "$TMP/man.err" ||
		fail "man -l failed: $(cat "$TMP/man.err")"
	grep -q '^EXIT STATUS' "$TMP/page" || fail "man -l did not render the page"
fi

# (b) Every long option of --help appears in the page.  Options are written
# as "Fl -name" (mdoc); "\-\-name" is accepted too.
"$VMSYNC" --help > "$TMP/help"
grep -oE -- '--[a-z][a-z0-9-]*' "$TMP/help" | sort -u > "$TMP/opts"
n=$(wc -l < "$TMP/opts")
[ "$n" -ge 14 ] || fail "only $n long options found in --help: $(tr '\n' ' ' < "$TMP/opts")"
while read -r opt; do
	name=${opt#--}
	grep -qE -- "(Fl -|\\\\-\\\\-)$name([^a-z0-9-]|\$)" "$page" ||
		fail "$opt is not in the man page"
	# It has an entry of its own in OPTIONS.
	grep -qE -- "^\.It .*Fl -$name([^a-z0-9-]|\$)" "$page" ||
		fail "$opt has no .It entry in the man page"
done < "$TMP/opts"

# A short option that --help pairs with a long one is paired on its .It line.
grep -oE -- '^ +-[^-, ], --[a-z][a-z0-9-]*' "$TMP/help" |
	sed -E 's/^ +-(.), --(.*)$/\1 \2/' > "$TMP/pairs"
[ "$(wc -l < "$TMP/pairs")" -ge 7 ] || fail "short options not found in --help"
while read -r short long; do
	grep -qF -- ".It Fl $short , Fl -$long" "$page" ||
		fail "-$short, --$long: no '.It Fl $short , Fl -$long' line"
done < "$TMP/pairs"

# Nothing documented as an option that the program does not have.
sed -n '/^\.Sh OPTIONS/,/^\.Sh /p' "$page" |
	grep -oE -- '^\.It .*' | grep -oE -- 'Fl -[a-z][a-z0-9-]*' |
	sed 's/^Fl -/--/' | sort -u > "$TMP/documented"
[ -s "$TMP/documented" ] || fail "no options in the OPTIONS section"
extra=$(comm -23 "$TMP/documented" "$TMP/opts")
[ -z "$extra" ] || fail "documented but not in --help: $extra"

# (c) EXIT STATUS lists exactly the codes of enum vs_exit, each as an
# item of its own, in order.
sed -n '/^\.Sh EXIT STATUS/,/^\.Sh /p' "$page" > "$TMP/exit"
[ -s "$TMP/exit" ] || fail "no EXIT STATUS section"
want=$(sed -nE 's/^\s*VS_EXIT_[A-Z]+ = ([0-9]+),.*/\1/p' "$VMSYNC_TOP/src/vmsync.h" | tr '\n' ' ')
[ "$want" = "0 1 2 3 4 5 6 7 " ] || fail "enum vs_exit reads as '$want'"
codes=$(grep -oE '^\.It [0-9]+$' "$TMP/exit" | awk '{print $2}' | tr '\n' ' ')
[ "$codes" = "$want" ] || fail "EXIT STATUS lists '$codes', want '$want'"
