#!/usr/bin/env bash
# Proves: vmsync - DIR/ with standard input closed says so (one line
# naming "-", exit 2), and writes nothing, neither in DIR nor in TMPDIR.
# The unnamed file that holds a stream took descriptor 0 and was read as
# the archive: the refusal was an empty archive's ("Unrecognized archive
# format").
. "$VMSYNC_TOP/tests/functions.sh"

cd "$TMP" || fail "cd $TMP"
export TMPDIR=$TMP/spool
mkdir "$TMPDIR" out
must_fail 2 "^vmsync: -: cannot read standard input: Bad file descriptor" \
	"$VMSYNC" - out/ <&-
[ -z "$(ls -A out)" ] || fail "left in DIR: $(ls -A out)"
[ -z "$(ls -A "$TMPDIR")" ] || fail "left in TMPDIR: $(ls -A "$TMPDIR")"
echo "ok"
