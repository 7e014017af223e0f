#!/usr/bin/env bash
# Proves: a client of vmsync --server --root DIR cannot tell from the
# server's answers whether a path outside DIR exists.  For each way out
# (absolute paths, "..", symbolic links planted inside, absolute and
# relative), as a push target, a pull source and a --snapshot-dir, a path
# that exists outside and one that does not get the same exit code and the
# same one-line error (the names aside); a --snapshot-dir outside is
# refused as outside DIR (exit 1).  Nothing outside changes.
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs

mnt=$(mkbtrfs 1G)
root=$mnt/root
out=$mnt/outside
btrfs subvolume create "$root" > /dev/null
mkdir "$root/images" "$out" "$out/sub"
echo "keep me" > "$out/secret"
ln -s "$out" "$root/lnk"
ln -s "$mnt/nosuch" "$root/lnkno"
ln -s ../outside "$root/rel"
ln -s ../nosuch "$root/relno"
ln -s "$out/secret" "$root/images/f"
ln -s "$out/nosuch" "$root/images/fno"
src=$TMP/disk.img
"$HOLES" make "$src" 8M 0:1M:1
printf '#!/bin/sh\nexec "%s" --server --root="%s"\n' "$VMSYNC" "$root" > "$TMP/fc"
chmod +x "$TMP/fc"
outside_now() {
	(cd "$out" && find . -printf '%p %s %T@\n' | sort; cat secret)
}
before=$(outside_now)

answer() {	# exit code and stderr of a confined vmsync ARGS...
	local rc=0
	"$VMSYNC" -e "$TMP/fc" -q "$@" > /dev/null 2> "$TMP/err" || rc=$?
	[ "$(wc -l < "$TMP/err")" -eq 1 ] || { cat "$TMP/err"; fail "not one line: $*"; }
	[ "$rc" -ne 0 ] || fail "not refused: $*"
	echo "$rc $(cat "$TMP/err")"
}
# same_answer EXISTING MISSING ARGS...: ARGS with @ replaced by each
same_answer() {
	local yes=$1 no=$2 a b
	shift 2
	a=$(answer "${@//@/$yes}")
	b=$(answer "${@//@/$no}")
	[ "${b//$no/$yes}" = "$a" ] ||
		fail "existence shows: '$a' for $yes, '$b' for $no"
	echo "$a"
}
outside() {	# the answer says "outside DIR", exit 1
	case $1 in
	"1 vmsync: host: "*"outside the directory this server is confined to") ;;
	*) fail "not refused as outside: $1" ;;
	esac
}

for p in "$out/" "$out/sub/" ../outside/ images/../../outside/ lnk/ lnk/sub/ rel/; do
	n=${p/outside/nosuch}
	n=${n/lnk/lnkno}
	n=${n/rel/relno}
	n=${n/sub/nosub}
	outside "$(same_answer "$p" "$n" "$src" "host:@")"
done
for p in "$out/secret" ../outside/secret lnk/secret rel/secret; do
	outside "$(same_answer "$p" "${p/secret/nosuch}" "host:@" "$TMP/x.img")"
done
same_answer lnk lnkno "$src" "host:@" > /dev/null
same_answer lnk lnkno "host:@" "$TMP/x.img" > /dev/null
same_answer images/f images/fno "host:@" "$TMP/x.img" > /dev/null
same_answer images/f images/fno "$src" "host:@" > /dev/null
for p in "$out/sub" "$out" ../outside ../outside/sub lnk/sub rel/sub; do
	n=${p/outside/nosuch}
	n=${n/lnk/lnkno}
	n=${n/rel/relno}
	n=${n/sub/nosub}
	outside "$(same_answer "$p" "$n" --snapshot --snapshot-dir @ "$src" host:images/)"
done
[ ! -e "$TMP/x.img" ] || fail "a refused pull made a file"
[ ! -e "$mnt/nosuch" ] || fail "a path outside DIR was made"
[ "$(outside_now)" = "$before" ] || fail "something outside DIR changed"
