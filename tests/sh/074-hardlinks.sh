#!/usr/bin/env bash
# Proves: a hard link inside a --root directory cannot make a push write a
# file outside it.  With DIR/images/disk.img a hard link to a file
# outside DIR, a push exits 3 with one line naming the target and its
# hard links, and the outside file is unchanged; the same for an index
# (DIR/images/.other.img.vmsync-index) linked to a file outside.  Locally,
# a target with other hard links is synced with one warning line.
. "$VMSYNC_TOP/tests/functions.sh"

root=$TMP/root
outside=$TMP/outside
mkdir -p "$root/images" "$outside"
src=$TMP/disk.img
"$HOLES" make "$src" 16M 0:1M:1 8M:1M:2
"$HOLES" make "$outside/victim.img" 16M 0:2M:9
"$HOLES" make "$outside/victim.idx" 1M 0:1M:8
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
	(cd "$outside" && find . -printf '%p %s %T@ %n\n' | sort; md5sum ./*)
}

ln "$outside/victim.img" "$root/images/disk.img"
cp --sparse=always "$src" "$root/images/other.img"
ln "$outside/victim.idx" "$root/images/.other.img.vmsync-index"
before=$(snapshot_outside)
must_fail 3 "^vmsync: host: images/disk.img: target has 2 hard links" \
	fvs "$src" "host:images/"
must_fail 3 "^vmsync: host: images/disk.img: target has 2 hard links" \
	fvs -c "$src" "host:$root/images/disk.img"
must_fail 3 "^vmsync: host: images/.other.img.vmsync-index: index has 2 hard links" \
	fvs "$src" "host:images/other.img"
[ "$(snapshot_outside)" = "$before" ] || fail "a file outside DIR changed"

# Locally the user's own link: synced, with a warning.
mkdir "$TMP/local"
ln "$outside/victim.img" "$TMP/local/disk.img"
vs "$src" "$TMP/local/" 2> "$TMP/err" || fail "local: $(cat "$TMP/err")"
grep -q "^vmsync: warning: $TMP/local/disk.img: target has 3 hard links" "$TMP/err" ||
	fail "local: no warning: $(cat "$TMP/err")"
[ "$(wc -l < "$TMP/err")" -eq 1 ] || fail "local: not one line: $(cat "$TMP/err")"
same "$src" "$TMP/local/disk.img"
