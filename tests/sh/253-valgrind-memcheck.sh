#!/usr/bin/env bash
# Proves: the common runs read no uninitialised memory, as valgrind's
# memcheck sees it (which AddressSanitizer does not look for): a first
# sync, a second one over a trusted index (whose records are checked with
# a seeded XXH3 state on the stack: reset_withSeed() read its stale seed
# and could keep a stale secret), --verify, a .tar.zst exported and
# imported, --list, and an incremental archive made and applied onto a
# preallocated file (FIEMAP's extents, which valgrind does not see the
# kernel write, are zeroed first).  In a sanitizer build valgrind cannot run the binary; the
# sanitizers check that pass instead.
. "$VMSYNC_TOP/tests/functions.sh"
requires valgrind

if ldd "$VMSYNC" 2>/dev/null | grep -q 'libasan\|libubsan'; then
	echo "ok: a sanitizer build, which valgrind cannot run"
	exit 0
fi

# memcheck CMD...: run vmsync under memcheck; any error fails the test.
memcheck() {
	valgrind -q --error-exitcode=99 --log-file="$TMP/vg" "$VMSYNC" "$@" ||
		fail "valgrind, exit $?: vmsync $*: $(head -30 "$TMP/vg")"
	[ ! -s "$TMP/vg" ] || fail "valgrind: vmsync $*: $(head -30 "$TMP/vg")"
}

cd "$TMP" || fail "cd $TMP"
"$HOLES" make vm.img 16M 0:2M:1 5M:1M:2 12M:512K:3
mkdir out imp
memcheck -q vm.img out/
"$HOLES" fill vm.img 8M:1M:4
memcheck -q vm.img out/
same out/vm.img vm.img
memcheck -q --verify out/vm.img
memcheck -q vm.img vm.tar.zst
memcheck -q vm.tar.zst imp/
same imp/vm.img vm.img
memcheck -q --list out/ > /dev/null
# An incremental archive, applied onto a preallocated copy of its base
# (whose unwritten extents FIEMAP reports).
cp --sparse=always vm.img base.img
"$HOLES" fill vm.img 3M:1M:5
memcheck -q --since base.img vm.img inc.tar
mkdir apply
fallocate -l 16M apply/vm.img
dd if=base.img of=apply/vm.img conv=notrunc,sparse status=none
memcheck -q inc.tar apply/
same apply/vm.img vm.img
echo "ok"
