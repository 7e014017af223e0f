#!/usr/bin/env bash
# Proves: command-line mistakes exit 1 with a one-line message and touch
# nothing; --version and --help exit 0.
. "$VMSYNC_TOP/tests/functions.sh"

"$HOLES" make "$TMP/a.img" 1M 0:64K:1
"$HOLES" make "$TMP/b.img" 1M 0:64K:2
mkdir "$TMP/out"

must_fail 1 "missing SRC and DEST" vs
must_fail 1 "missing DEST" vs "$TMP/a.img"
for bs in 3K 8M 0 abc 2K 64Q -4K; do
	must_fail 1 "--block-size '$bs': want a power of two from 4K to 4M" \
		vs -B "$bs" "$TMP/a.img" "$TMP/out/"
done
must_fail 1 "--frobnicate: unknown option" vs --frobnicate "$TMP/a.img" "$TMP/out/"
must_fail 1 "--quiet and --verbose cannot be used together" vs -q -v "$TMP/a.img" "$TMP/out/"
must_fail 1 "--json and --stats" vs --json --stats "$TMP/a.img" "$TMP/out/"
must_fail 1 "--quiet and --progress" vs -q --progress "$TMP/a.img" "$TMP/out/"
must_fail 1 "--format 'qcow3'" vs --format=qcow3 "$TMP/a.img" "$TMP/out/"
must_fail 1 "with several sources, DEST must be a directory" \
	vs "$TMP/a.img" "$TMP/b.img" "$TMP/out/x.img"
must_fail 1 "--index names the index of one target" \
	vs --index "$TMP/i" "$TMP/a.img" "$TMP/b.img" "$TMP/out/"
must_fail 1 "target is the source itself" vs "$TMP/a.img" "$TMP/a.img"
must_fail 1 "target is the source itself" vs "$TMP/a.img" "$TMP/"
[ -z "$(ls -A "$TMP/out")" ] || fail "a usage error created files"
must_fail 3 "$TMP/nodir/: target directory: No such file or directory" \
	vs "$TMP/a.img" "$TMP/nodir/"

vs --version | grep -qE '^vmsync [0-9]+\.[0-9]+' || fail "--version"
vs --help | grep -q -- '--block-size' || fail "--help"
vs --usage | grep -q 'Usage' || fail "--usage"
