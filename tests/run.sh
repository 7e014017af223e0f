#!/bin/sh
# Run the test suite: cmocka units (TAP, one line per case) and shell tests
# (exit 0 pass, 77 skip, else fail); a cmocka case that calls skip() is a
# skip.  Ends with "N passed, M failed, K skipped".
# Environment: BUILD (build dir), TEST (file-name glob), ONLY (unit|sh),
# VMSYNC_TEST_STRICT=1 (a skip counts as a failure).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
TEST=${TEST:-}
ONLY=${ONLY:-}
pass=0 fail=0 skip=0 failed=""
export VMSYNC="$PWD/$BUILD/vmsync"
export VMSYNC_HELPERS="$PWD/$BUILD/tests/helpers"
export VMSYNC_TOP="$PWD"
export CMOCKA_MESSAGE_OUTPUT=TAP
logdir="$BUILD/test-logs"
mkdir -p "$logdir"

matches() {
	[ -z "$TEST" ] && return 0
	case "$(basename "$1")" in $TEST) return 0 ;; esac
	return 1
}

if [ "$ONLY" != sh ]; then
	for t in "$BUILD"/tests/unit/test-*; do
		[ -x "$t" ] || continue
		matches "$t" || continue
		name=$(basename "$t")
		MALLOC_PERTURB_=$(( $(od -An -N1 -tu1 /dev/urandom) % 255 + 1 )) \
			"$t" > "$logdir/$name.log" 2>&1
		rc=$?
		# A case that called cmocka's skip() is a "# SKIP" line (cmocka
		# 1.1.5: "not ok N # SKIP name"; TAP: "ok N - name # SKIP"): a
		# skip, neither a pass nor a failure.
		sk=$(grep -Ec '^(not )?ok .*# SKIP' "$logdir/$name.log")
		ok=$(grep '^ok ' "$logdir/$name.log" | grep -vc '# SKIP')
		nok=$(grep '^not ok ' "$logdir/$name.log" | grep -vc '# SKIP')
		pass=$((pass + ok))
		fail=$((fail + nok))
		skip=$((skip + sk))
		if [ "$rc" -ne 0 ] && [ "$nok" -eq 0 ]; then
			fail=$((fail + 1))	# crashed before reporting
		fi
		if [ "$rc" -ne 0 ]; then
			failed="$failed $name"
			echo "FAIL: $name"; grep -v '^ok ' "$logdir/$name.log" | head -40
		else
			echo "PASS: $name ($ok cases)"
		fi
		grep -E '^(not )?ok .*# SKIP' "$logdir/$name.log" |
			sed "s/^/SKIP: $name: /"
	done
fi

if [ "$ONLY" != unit ]; then
	for t in tests/sh/[0-9]*.sh; do
		[ -f "$t" ] || continue
		matches "$t" || continue
		name=$(basename "$t" .sh)
		start=$(date +%s)
		MALLOC_PERTURB_=$(( $(od -An -N1 -tu1 /dev/urandom) % 255 + 1 )) \
			bash "$t" > "$logdir/$name.log" 2>&1
		rc=$?
		secs=$(( $(date +%s) - start ))
		case $rc in
		0) pass=$((pass + 1)); echo "PASS: $name (${secs}s)" ;;
		77) skip=$((skip + 1)); echo "SKIP: $name: $(tail -n 1 "$logdir/$name.log")" ;;
		*) fail=$((fail + 1)); failed="$failed $name"
		   echo "FAIL: $name (exit $rc)"; tail -n 30 "$logdir/$name.log" ;;
		esac
	done
fi

[ -n "$failed" ] && echo "failed:$failed (logs in $logdir)"
if [ "${VMSYNC_TEST_STRICT:-0}" = 1 ] && [ "$skip" -gt 0 ]; then
	echo "VMSYNC_TEST_STRICT=1: $skip skipped test(s) count as failures"
	fail=$((fail + skip))
fi
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
