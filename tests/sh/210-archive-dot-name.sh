#!/usr/bin/env bash
# Proves: an image whose name starts with a dot goes through an archive as
# it goes through a sync.  vmsync exports .vm.img as the entry .vm.img, and
# imports that archive into DIR/.vm.img (the index beside it), equal to the
# image with its holes; an incremental archive of it applies onto its base
# too.  Export and import agree on the names they refuse, the names of
# vmsync's own files beside a target:
#  - the export of an image named like an index (x.vmsync-index), a delta's
#    text (y.vmsync-delta) or vmsync's state (.vmsync.lock) is refused
#    with one line and exit 1, and no archive is left, for a full or an
#    incremental archive;
#  - an archive holding such an entry, or "..", is refused whole by the
#    import, exit 2, and nothing is written.
. "$VMSYNC_TOP/tests/functions.sh"
requires python3 qemu-img

cd "$TMP" || fail "cd $TMP"
"$HOLES" make .vm.img 16M 0:1M:1 9M:64K:2
cp --sparse=always .vm.img base.img

# (1) Export and import.
vs .vm.img dot.tar
mkdir r
vs dot.tar r/
same r/.vm.img .vm.img
diff <(data_ranges .vm.img) <(data_ranges r/.vm.img) ||
	fail "r/.vm.img is not as sparse as .vm.img"
[ -f r/..vm.img.vmsync-index ] || fail "no index beside r/.vm.img"
# As a sync names it.
mkdir s
vs .vm.img s/
[ "$(ls -A r)" = "$(ls -A s)" ] || fail "import made $(ls -A r), sync $(ls -A s)"

# (2) An incremental archive of it, applied onto its base.
"$HOLES" fill .vm.img 4M:64K:3
vs --since=base.img .vm.img delta.tar
mkdir d
cp --sparse=always base.img d/.vm.img
vs delta.tar d/
same d/.vm.img .vm.img

# (3) Names of vmsync's own files: refused by the export ...
for n in x.vmsync-index y.vmsync-delta .vmsync.lock; do
	cp --sparse=always base.img "$n"
	must_fail 1 "^vmsync: $n: entry name $n is a name of vmsync's own files" \
		vs "$n" bad.tar
	must_fail 1 "^vmsync: $n: entry name $n is a name of vmsync's own files" \
		vs --since=base.img "$n" bad.tar
	[ ! -e bad.tar ] || fail "$n: bad.tar written"
done
left=$(find . -name '*.tmp-*' | tr '\n' ' ')
[ -z "$left" ] || fail "left behind: $left"

# ... and by the import, which writes nothing.
python3 - <<'EOF'
import io, tarfile
for path, name in [("lock.tar", ".vmsync.lock"), ("index.tar", ".x.vmsync-index"),
                   ("text.tar", "y.vmsync-delta"), ("up.tar", "..")]:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as t:
        for n in ("ok", name):
            ti = tarfile.TarInfo(n)
            ti.size = 1000
            t.addfile(ti, io.BytesIO(b"x" * 1000))
EOF
before=$(cd r && find . -printf '%p %s %T@\n' | sort)
for a in lock index text up; do
	must_fail 2 "^vmsync: $a\.tar: entry '.*' at offset [0-9]+: not a plain file name" \
		vs "$a.tar" r/
	after=$(cd r && find . -printf '%p %s %T@\n' | sort)
	[ "$after" = "$before" ] || fail "$a.tar: r/ changed: $after"
	[ ! -e ok ] && [ ! -e r/ok ] || fail "$a.tar: wrote ok"
done
