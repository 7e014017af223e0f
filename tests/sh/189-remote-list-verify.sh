#!/usr/bin/env bash
# Proves: vmsync --list and --verify take host:path: the server there
# (vmsync --server --root DIR, a forced command) reads the backups beneath
# DIR and sends what it finds, and the client prints it as a local run
# does.
#  - --list host:DIR, --json and table: every generation of each backup
#    (the live copy and the --snapshot ones), in time order, with the same
#    fields as --list run on the server, each path as host:path; a
#    snapshot's path, passed back as SRC, pulls that generation.  DIR
#    given relative to the root, or absolute, and an unconfined server,
#    list the same.
#  - --verify host:PATH of a backup and of a snapshot's copy: exit 0; one
#    changed byte in the target: exit 7, one line with its block's offset
#    on stderr, the same range in --json.
#  - A path outside DIR (climbing with "..", absolute elsewhere, through a
#    symbolic link out) is refused: exit 1, one line, the same whether
#    what it leads to exists or not; an image symlinked from outside is
#    not listed; a missing path is one line
#    naming it; a DIR whose subvolume is above it lists the live copies
#    only (the snapshots are outside it).
#  - A server that speaks only protocol version 4 (vspeer.py) is told
#    apart: one line, "remote vmsync is too old for --list; upgrade it".
. "$VMSYNC_TOP/tests/functions.sh"
requires_btrfs
requires jq python3

mnt=$(mkbtrfs 1G)
root=$mnt/root
btrfs subvolume create "$root" > /dev/null
mkdir "$root/images" "$mnt/outside"
K=65536
M=1048576

forced() {	# forced NAME DIR: a forced command confined to DIR
	printf '#!/bin/sh\nexec "%s" --server --root="%s"\n' "$VMSYNC" "$2" > "$TMP/$1"
	chmod +x "$TMP/$1"
}
forced fc "$root"
fvs() {
	"$VMSYNC" -e "$TMP/fc" "$@"
}

"$HOLES" make "$TMP/a.img" 16M 0:4M:1
"$HOLES" make "$TMP/b.img" 8M 0:1M:2
fvs -q --snapshot "$TMP/a.img" "$TMP/b.img" host:images/
cp "$TMP/a.img" "$TMP/a1.img"
sleep 1.1
"$HOLES" fill "$TMP/a.img" 1M:64K:3
fvs -q --snapshot "$TMP/a.img" host:images/
sleep 1.1
"$HOLES" fill "$TMP/a.img" 2M:64K:4
fvs -q "$TMP/a.img" host:images/

# The listing, as the server's own --list has it, each path host:path.
LIST=$(fvs --list --json host:images) || fail "--list host:images: exit $?"
q() { printf '%s' "$LIST" | jq -r "$1"; }
[ "$(q '[.images[].name] | join(" ")')" = "a.img b.img" ] || fail "images: $LIST"
[ "$(q '.images[0].generations | length')" -eq 3 ] || fail "a.img: not 3 generations: $LIST"
[ "$(q '.images[1].generations | length')" -eq 3 ] || fail "b.img: not 3 generations: $LIST"
[ "$(q '.images[0].generations[2].path')" = "host:$root/images/a.img" ] ||
	fail "the live copy is not last, or not host:path: $LIST"
q '.images[].generations[].path' | grep -v "^host:$root/" && fail "paths: $LIST"
[ "$(q '.images[0].generations | map(.time) | . == sort')" = true ] || fail "not in time order: $LIST"
[ "$(q '[.images[].generations[].complete] | all')" = true ] || fail "not complete: $LIST"
[ "$(q '.exit_code')" -eq 0 ] || fail "exit_code: $LIST"
LOCAL=$("$VMSYNC" --list --json "$root/images")
[ "$(q '.images[].generations[].path |= sub("^host:"; "") | tojson')" = \
	"$(printf '%s' "$LOCAL" | jq -c .)" ] ||
	fail "not what --list on the server says: $LIST / $LOCAL"
[ "$(fvs --list --json "host:$root/images/")" = "$LIST" ] || fail "absolute DIR lists otherwise"
[ "$(rvs --list --json "host:$root/images")" = "$LIST" ] || fail "an unconfined server lists otherwise"

# A generation's path is a SRC: pull the first snapshot's copy back.
first=$(q '.images[0].generations[0].path')
case $first in "host:$root/.vmsync-snapshots/"*/images/a.img) ;; *) fail "first generation: $first" ;; esac
fvs -q "$first" "$TMP/restored.img"
same "$TMP/a1.img" "$TMP/restored.img"

fvs --list host:images > "$TMP/table" || fail "table: exit $?"
head -1 "$TMP/table" | grep -q '^IMAGE ' || fail "table header: $(cat "$TMP/table")"
[ "$(grep -c '^a\.img .* complete host:' "$TMP/table")" -eq 3 ] || fail "table: $(cat "$TMP/table")"
tail -1 "$TMP/table" | grep -q "^b\.img .* host:$root/images/b\.img$" || fail "table order: $(cat "$TMP/table")"

# --verify: a good backup, a snapshot's copy, then one changed byte.
fvs -q --verify host:images/a.img || fail "--verify host:images/a.img: exit $?"
fvs -q --verify "$first" || fail "--verify $first: exit $?"
VERIFY=$(fvs --verify --json host:images/b.img 2> /dev/null) || fail "--verify --json: exit $?"
[ "$(printf '%s' "$VERIFY" | jq -r '.images[0] | "\(.path) \(.status) \(.complete) \(.read_bytes)"')" = \
	"host:images/b.img 0 true $M" ] || fail "--verify --json: $VERIFY"
printf 'X' | dd of="$root/images/a.img" bs=1 seek=$((3 * M + 5)) conv=notrunc status=none
rc=0
fvs --verify host:images/a.img 2> "$TMP/err" || rc=$?
[ $rc -eq 7 ] || fail "a changed byte: exit $rc: $(cat "$TMP/err")"
grep -qx "vmsync: host:images/a.img: offset $((3 * M)): $K bytes: differs from the index" "$TMP/err" ||
	fail "a changed byte: no line for its offset: $(cat "$TMP/err")"
[ "$(wc -l < "$TMP/err")" -eq 1 ] || fail "a changed byte: not one line: $(cat "$TMP/err")"
rc=0
VERIFY=$(fvs --verify --json host:images/a.img 2> /dev/null) || rc=$?
[ $rc -eq 7 ] || fail "--json: exit $rc"
[ "$(printf '%s' "$VERIFY" | jq -c '[.images[0].status, .exit_code, [.images[0].bad[] | .offset, .reason]]')" = \
	"[7,7,[$((3 * M)),\"differs from the index\"]]" ] || fail "--json: $VERIFY"

# Nothing outside DIR, and one line for what is not there.
"$VMSYNC" -q "$TMP/b.img" "$mnt/outside/"
ln -s "$mnt/outside" "$root/out"
ln -s "$mnt/outside/b.img" "$root/images/c.img"
ln -s "$mnt/outside/.b.img.vmsync-index" "$root/images/.c.img.vmsync-index"
away="outside the directory this server is confined to$"
must_fail 1 "^vmsync: host: \.\./outside: $away" fvs --list host:../outside
must_fail 1 "^vmsync: host: $mnt/outside: $away" fvs --list "host:$mnt/outside"
must_fail 1 "^vmsync: host: out: $away" fvs --list host:out
must_fail 1 "^vmsync: host: \.\./outside/b\.img: $away" fvs --verify host:../outside/b.img
must_fail 1 "^vmsync: host: $mnt/outside/b\.img: $away" fvs --verify "host:$mnt/outside/b.img"
must_fail 1 "^vmsync: host: out/b\.img: $away" fvs --verify host:out/b.img
must_fail 1 "^vmsync: host: images/c\.img: $away" fvs --verify host:images/c.img
# Whether a way out leads anywhere makes no difference (no oracle).
ln -s "$mnt/nosuch" "$root/outno"
ln -s ../outside "$root/rel"
ln -s ../nosuch "$root/relno"
ln -s "$mnt/nosuch" "$root/images/d.img"
for p in outno rel relno; do
	must_fail 1 "^vmsync: host: $p: $away" fvs --list "host:$p"
	must_fail 1 "^vmsync: host: $p/b\.img: $away" fvs --verify "host:$p/b.img"
done
must_fail 1 "^vmsync: host: images/d\.img: $away" fvs --verify host:images/d.img
[ "$(fvs --list --json host:images | jq -r '[.images[].name] | join(" ")')" = "a.img b.img" ] ||
	fail "an image symlinked from outside is listed"
must_fail 2 "^vmsync: host: images/nope\.img: cannot open source: No such file or directory$" \
	fvs --verify host:images/nope.img
must_fail 1 "^vmsync: host: nowhere: --list: No such file or directory$" fvs --list host:nowhere

# DIR below its subvolume: the snapshots are outside it.
forced fc2 "$root/images"
LIST=$("$VMSYNC" -e "$TMP/fc2" --list --json host:.) || fail "--list host:.: exit $?"
[ "$(q '[.images[] | .generations | length] | join(" ")')" = "1 1" ] ||
	fail "snapshots above DIR listed: $LIST"
[ "$(q '.images[0].generations[0].path')" = "host:$root/images/a.img" ] || fail "live copy: $LIST"

# A server of protocol version 4.
PEER=$VMSYNC_TOP/tests/helpers/vspeer.py
must_fail 1 "^vmsync: host: remote vmsync is too old for --list; upgrade it$" \
	"$VMSYNC" -e "python3 $PEER server old" --list host:images
must_fail 1 "^vmsync: host: remote vmsync is too old for --verify; upgrade it$" \
	"$VMSYNC" -e "python3 $PEER server old" --verify host:images/a.img
echo "listed and verified through the server, confined to its root"
