#!/usr/bin/env bash
# Proves: vmsync --server --root DIR (as an authorized_keys forced command
# runs it, whatever command the client asks for) opens nothing outside
# DIR: "..", absolute paths elsewhere and symbolic links planted inside
# that lead out are refused with one line (exit 1, or 3 for a link as the
# target file), nothing is written outside, and paths under DIR -- given
# absolute or relative -- work for push and pull.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs

mnt=$(mkbtrfs 1G)
root=$mnt/root
outside=$mnt/outside
mkdir -p "$root/images" "$outside"
echo "keep me" > "$outside/secret"
src=$TMP/disk.img
"$HOLES" make "$src" 16M 0:1M:1 8M:1M:2

# The forced command: ignores what the client asked to run.
forced=$TMP/forced
cat > "$forced" <<EOS
#!/bin/sh
exec "$VMSYNC" --server --root="$root"
EOS
chmod +x "$forced"
fvs() {
	"$VMSYNC" -e "$forced" "$@"
}
snapshot_outside() {
	(cd "$outside" && find . -printf '%p %s %T@\n' | sort; cat secret)
}
before=$(snapshot_outside)

fvs -q "$src" "host:$root/images/"
same "$src" "$root/images/disk.img"
fvs -q "$src" "host:images/copy.img"
same "$src" "$root/images/copy.img"
fvs -q "host:images/disk.img" "$TMP/pulled.img"
same "$src" "$TMP/pulled.img"
fvs -q "host:$root/images/disk.img" "$TMP/pulled2.img"
same "$src" "$TMP/pulled2.img"

must_fail 1 "^vmsync: host: .*outside" fvs "$src" "host:$outside/"
must_fail 1 "^vmsync: host: .*outside" fvs "$src" "host:../outside/"
must_fail 1 "^vmsync: host: .*outside" fvs "$src" "host:images/../../outside/x.img"
must_fail 1 "^vmsync: host: .*outside" fvs "host:$outside/secret" "$TMP/x.img"
must_fail 1 "^vmsync: host: .*outside" fvs "host:../outside/secret" "$TMP/x.img"
# Links planted inside: a directory link, a link as the target file, a
# link as the source.
ln -s "$outside" "$root/escape"
ln -s ../outside "$root/escape2"
ln -s "$outside/secret" "$root/images/evil.img"
must_fail 1 "^vmsync: host: .*outside" fvs "$src" "host:escape/"
must_fail 1 "^vmsync: host: .*outside" fvs "$src" "host:escape2/x.img"
must_fail 3 "^vmsync: host: .*evil.img" fvs "$src" "host:images/evil.img"
must_fail 2 "^vmsync: host: .*evil.img" fvs "host:images/evil.img" "$TMP/y.img"
must_fail 1 "^vmsync: host: .*outside" fvs "host:escape/secret" "$TMP/z.img"
[ ! -e "$TMP/y.img" ] && [ ! -e "$TMP/z.img" ] || fail "a refused pull made a file"
[ "$(snapshot_outside)" = "$before" ] || fail "something outside DIR changed"
