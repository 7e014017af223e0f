#!/usr/bin/env bash
# Proves: bad command lines exit 1 with a one-line error and create or
# change nothing: no arguments, one argument, a bad --block-size, an unknown
# option, exclusive options together, several SRC into a DEST that is not a
# directory, --index with several SRC, an unknown --format.  A target that
# is the source itself (same name, another name for it, a hard link, the
# source's own directory as DEST) is refused, and so is an index file that
# is the source or the target: in each case the source and the target are
# unchanged.  --version, --help, -? and --usage exit 0.
. "$VMSYNC_TOP/tests/functions.sh"
requires jq

work=$TMP/work
mkdir "$work"
cd "$work" || fail "cd $work"
"$HOLES" make src.img 4M 0:1M:1 2M:64K:2
"$HOLES" make other.img 4M 1M:1M:3
sums=$(md5sum src.img other.img)
shopt -s dotglob nullglob

# Nothing but the two images in the directory, both unchanged.
clean() {
	local files=(*)
	[ "${files[*]}" = "other.img src.img" ] || fail "$1: left ${files[*]}"
	[ "$(md5sum src.img other.img)" = "$sums" ] || fail "$1: an image changed"
}

usage() {	# usage REGEX ARGS...: exit 1, one line, nothing done
	local re=$1
	shift
	must_fail 1 "^vmsync: .*$re" vs "$@"
	[ ! -s "$TMP/stdout" ] || fail "usage error printed on stdout: $*"
	clean "vmsync $*"
}

usage "missing SRC and DEST"
usage "missing DEST" src.img
usage "missing DEST" -v --stats src.img
for b in 3K 8M abc 0 2K 4095 -4K 64KX 18446744073709551616 17179869184T ""; do
	usage "--block-size '$b'" --block-size="$b" src.img t.img
done
usage "--block-size '3K'" -B 3K src.img t.img
usage "--bogus" --bogus src.img t.img
usage "-Z" -Z src.img t.img
usage "--quiet and --verbose" --quiet --verbose src.img t.img
usage "--quiet and --verbose" -v -q src.img t.img
usage "--json and --stats" --json --stats src.img t.img
usage "--quiet and --progress" -q --progress src.img t.img
usage "--format 'foo'" --format=foo src.img t.img
usage "--format 'vvfat'" -f vvfat src.img t.img
usage "--output-format 'vmdk'" -O vmdk src.img t.img
usage "--output-format 'RAW'" --output-format=RAW src.img t.img
usage "notdir.img: with several sources, DEST must be a directory" \
	src.img other.img notdir.img
usage "--index" --index=idx src.img other.img "$work/"
# DEST exists as a file: still not a directory; it is not written.
cp src.img "$TMP/dest.img"
dsum=$(md5sum < "$TMP/dest.img")
usage "$TMP/dest.img: with several sources" src.img other.img "$TMP/dest.img"
[ "$(md5sum < "$TMP/dest.img")" = "$dsum" ] || fail "DEST file changed"

# The target is the source itself, named in every way.
ln src.img hard.img
ln -s src.img sym.img
ssum=$(md5sum < src.img)
for dest in src.img ./src.img "$work/src.img" hard.img ./ "$work" "$work/"; do
	must_fail 1 "^vmsync: .*: target is the source itself$" vs src.img "$dest"
	[ "$(md5sum < src.img)" = "$ssum" ] || fail "source changed (dest $dest)"
done
must_fail 1 "target is the source itself$" vs sym.img src.img
must_fail 1 "target is the source itself$" vs hard.img "$work/"
must_fail 1 "target is the source itself$" vs -n src.img src.img
[ "$(md5sum < src.img)" = "$ssum" ] || fail "source changed"
rm hard.img sym.img
clean "target is the source"

# An index file that is the source or the target would be overwritten with
# index data: refused, like a target that is the source.
must_fail 1 "^vmsync: .*src.img" vs --index=src.img src.img t.img
[ "$(md5sum < src.img)" = "$ssum" ] || fail "--index naming the source: source changed"
rm -f t.img
vs -q src.img t.img
cp --sparse=always src.img "$TMP/copy.img"	# what t.img must stay
"$HOLES" fill src.img 3M:64K:9
ssum=$(md5sum < src.img)
must_fail 1 "^vmsync: .*t.img: " vs --index=t.img src.img t.img
cmp -s t.img "$TMP/copy.img" || fail "--index naming the target: target changed"
# The source is the target's implicit index (.NAME.vmsync-index).
cp --sparse=always src.img .t.img.vmsync-index
isum=$(md5sum < .t.img.vmsync-index)
must_fail 1 "^vmsync: .*" vs .t.img.vmsync-index t.img
[ "$(md5sum < .t.img.vmsync-index)" = "$isum" ] || fail "source used as index: changed"
cmp -s t.img "$TMP/copy.img" || fail "source used as index: target changed"
[ "$(md5sum < src.img)" = "$ssum" ] || fail "source changed"
rm -f t.img .t.img.vmsync-index

# Not errors.
for opt in --version -V; do
	out=$(vs "$opt") || fail "$opt: exit $?"
	[[ $out =~ ^vmsync\ [0-9] ]] || fail "$opt printed: $out"
done
for opt in --help "-?" --usage; do
	out=$(vs "$opt" 2>&1) || fail "$opt: exit $?"
	[[ $out == *SRC* ]] || fail "$opt: no synopsis: $out"
done
# Not through a pipe to grep -q: vmsync would be killed by SIGPIPE when
# grep stops reading before the end of a help longer than one buffer.
[[ $(vs --help) == *--block-size* ]] || fail "--help does not list --block-size"
sums=$(md5sum src.img other.img)
clean "--help"
