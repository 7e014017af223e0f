#!/usr/bin/env bash
# Proves: contrib/systemd/vmsync@.service and vmsync@.timer, instantiated
# with vmsync-run at its place in this tree, pass `systemd-analyze verify`
# without a line of output (no unknown key, bad value or missing
# executable), and the timer's OnCalendar= is a calendar expression
# systemd accepts.
. "$VMSYNC_TOP/tests/functions.sh"
requires systemd-analyze
top=$VMSYNC_TOP/contrib

mkdir "$TMP/units"
sed "s|/usr/local/lib/vmsync/|$top/systemd/|" "$top/systemd/vmsync@.service" \
	> "$TMP/units/vmsync@t173.service"
cp "$top/systemd/vmsync@.timer" "$TMP/units/vmsync@t173.timer"
grep -q "^ExecStart=$top/systemd/vmsync-run " "$TMP/units/vmsync@t173.service" ||
	fail "ExecStart does not run vmsync-run from /usr/local/lib/vmsync/"
(cd "$TMP/units" && systemd-analyze verify --man=no ./vmsync@t173.service ./vmsync@t173.timer) \
	> "$TMP/verify" 2>&1 || { cat "$TMP/verify"; fail "systemd-analyze verify failed"; }
[ ! -s "$TMP/verify" ] || { cat "$TMP/verify"; fail "systemd-analyze verify warned"; }

cal=$(sed -n 's/^OnCalendar=//p' "$top/systemd/vmsync@.timer")
[ -n "$cal" ] || fail "the timer has no OnCalendar="
systemd-analyze calendar "$cal" > /dev/null || fail "OnCalendar=$cal"
