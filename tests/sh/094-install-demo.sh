#!/usr/bin/env bash
# Proves: `make install` puts the binary and the man page under DESTDIR and
# PREFIX, the installed binary runs, `make uninstall` removes both; the demo
# (make demo's script) syncs twice, the second run writing only the change
# and punching the discard, and ends with an identical backup.
. "$VMSYNC_TOP/tests/functions.sh"
requires make cmp fallocate

build=$(dirname "$VMSYNC")
dest=$TMP/root
make -s -C "$VMSYNC_TOP" BUILD="$build" DESTDIR="$dest" PREFIX=/usr install
[ -x "$dest/usr/bin/vmsync" ] || fail "binary not installed"
[ -f "$dest/usr/share/man/man1/vmsync.1" ] || fail "man page not installed"
"$dest/usr/bin/vmsync" --version | grep -q '^vmsync ' || fail "installed binary does not run"
make -s -C "$VMSYNC_TOP" BUILD="$build" DESTDIR="$dest" PREFIX=/usr uninstall
[ ! -e "$dest/usr/bin/vmsync" ] && [ ! -e "$dest/usr/share/man/man1/vmsync.1" ] ||
	fail "uninstall left files"

# The demo, in a copy of the script's surroundings so the tree stays clean.
mkdir -p "$TMP/demo/tests" "$TMP/demo/b/tests/helpers"
cp "$VMSYNC_TOP/tests/demo.sh" "$TMP/demo/tests/"
cp "$VMSYNC" "$TMP/demo/b/vmsync"
cp "$VMSYNC_HELPERS/holes" "$TMP/demo/b/tests/helpers/holes"
(cd "$TMP/demo" && BUILD=b sh tests/demo.sh) > "$TMP/demo.out" 2>&1 ||
	{ cat "$TMP/demo.out"; fail "demo failed"; }
cat "$TMP/demo.out"
grep -q 'is identical to' "$TMP/demo.out" || fail "demo did not verify the backup"
cmp "$TMP/demo/demo-work/disk.img" "$TMP/demo/demo-backup/disk.img" || fail "demo backup differs"
written=$(grep -E '^ *written:' "$TMP/demo.out" | awk '{print $2, $3}')
[ "$(echo "$written" | sed -n 2p)" = "12.00 KiB" ] || fail "second demo run wrote $(echo "$written" | sed -n 2p)"
