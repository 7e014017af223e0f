#!/usr/bin/env bash
# Proves `make install` puts every part in place and `make uninstall`
# takes exactly that away:
#  - into a DESTDIR with the default directories: the binary, the man
#    page, vmsync-run, the units, the snapper plugin (where snapper 0.10
#    looks: /usr/lib/snapper/plugins) and wrapper, the docs with the cron
#    example, /etc/vmsync/EXAMPLE.conf, and nothing else; every path the
#    units name is installed; the scripts run the installed vmsync;
#  - with every directory changed, nothing names a default place any more;
#  - an existing EXAMPLE.conf is neither overwritten nor removed, and one
#    changed since make install is kept by make uninstall;
#  - installed under a PREFIX in $TMP (no DESTDIR), the units pass
#    `systemd-analyze verify` and vmsync-run syncs an image with the
#    installed vmsync;
#  - make uninstall leaves nothing behind, not even a directory it made.
. "$VMSYNC_TOP/tests/functions.sh"
requires make install sed cmp

# The binary that tests/run.sh built; MAKEFLAGS of an outer make check
# (SANITIZE=1, TEST=...) must not reach these makes.
build=$(dirname "$VMSYNC")
build=${build#"$VMSYNC_TOP"/}
unset MAKEFLAGS MFLAGS MAKELEVEL
mk() {
	make -s -C "$VMSYNC_TOP" BUILD="$build" "$@" > "$TMP/make.out" 2>&1 ||
		{ cat "$TMP/make.out"; fail "make $*"; }
}

# --- A DESTDIR, default directories.
d=$TMP/dest
mk install DESTDIR="$d"
(cd "$d" && find . -type f | sort) > "$TMP/files"
cat > "$TMP/want" <<'EOF'
./etc/vmsync/EXAMPLE.conf
./usr/lib/snapper/plugins/50-vmsync
./usr/local/bin/vmsync
./usr/local/bin/vmsync-snapper
./usr/local/lib/systemd/system/vmsync@.service
./usr/local/lib/systemd/system/vmsync@.timer
./usr/local/lib/vmsync/install-manifest
./usr/local/lib/vmsync/vmsync-run
./usr/local/share/doc/vmsync/README.md
./usr/local/share/doc/vmsync/cron/README.md
./usr/local/share/doc/vmsync/cron/vmsync.cron
./usr/local/share/doc/vmsync/snapper/README.md
./usr/local/share/doc/vmsync/ssh/README.md
./usr/local/share/doc/vmsync/systemd/README.md
./usr/local/share/man/man1/vmsync-snapper.1
./usr/local/share/man/man1/vmsync.1
EOF
diff -u "$TMP/want" "$TMP/files" || fail "installed files differ"
[ -z "$(cd "$d" && find . ! -type f ! -type d)" ] || fail "not a file or directory"

for x in usr/local/bin/vmsync usr/local/bin/vmsync-snapper \
	usr/local/lib/vmsync/vmsync-run usr/lib/snapper/plugins/50-vmsync; do
	[ "$(stat -c %a "$d/$x")" = 755 ] || fail "$x: mode $(stat -c %a "$d/$x")"
done
for x in etc/vmsync/EXAMPLE.conf usr/local/share/man/man1/vmsync.1 \
	usr/local/lib/systemd/system/vmsync@.service; do
	[ "$(stat -c %a "$d/$x")" = 644 ] || fail "$x: mode $(stat -c %a "$d/$x")"
done
cmp "$VMSYNC" "$d/usr/local/bin/vmsync" || fail "the binary"
cmp "$VMSYNC_TOP/man/vmsync.1" "$d/usr/local/share/man/man1/vmsync.1" || fail "man page"
cmp "$VMSYNC_TOP/contrib/ssh/README.md" "$d/usr/local/share/doc/vmsync/ssh/README.md" ||
	fail "ssh README"
"$d/usr/local/bin/vmsync" --version | grep -q '^vmsync ' || fail "--version"

# unit_paths FILE: every absolute path in FILE's settings (not its
# comments), %i as EXAMPLE.
unit_paths() {
	grep -v '^[#;]' "$1" | grep -o '/[^ ]*' | sed 's/%i/EXAMPLE/g' | sort -u
}
u=$d/usr/local/lib/systemd/system
grep -qx 'ExecStart=/usr/local/lib/vmsync/vmsync-run /etc/vmsync/%i.conf' \
	"$u/vmsync@.service" || fail "ExecStart: $(grep ExecStart "$u/vmsync@.service")"
n=0
for f in "$u/vmsync@.service" "$u/vmsync@.timer"; do
	for p in $(unit_paths "$f"); do
		[ -e "$d$p" ] || fail "$(basename "$f") names $p, not installed"
		n=$((n + 1))
	done
done
[ "$n" -ge 3 ] || fail "only $n paths in the units"
# The scripts run the installed vmsync, the plugin reads the config dir.
grep -q '^vmsync=${VMSYNC:-/usr/local/bin/vmsync}$' "$d/usr/local/lib/vmsync/vmsync-run" ||
	fail "vmsync-run does not run the installed vmsync"
grep -q '^vmsync=${VMSYNC:-/usr/local/bin/vmsync}$' "$d/usr/local/bin/vmsync-snapper" ||
	fail "vmsync-snapper does not run the installed vmsync"
grep -q '^vmsync=${VMSYNC:-/usr/local/bin/vmsync}$' "$d/usr/lib/snapper/plugins/50-vmsync" ||
	fail "50-vmsync does not run the installed vmsync"
grep -q '^conf=${VMSYNC_SNAPPER_CONF:-/etc/vmsync/snapper.conf}$' \
	"$d/usr/lib/snapper/plugins/50-vmsync" || fail "50-vmsync's config"
# The cron example names the installed programs.
n=0
for p in $(grep -o '/usr/[^ ]*vmsync[^ ]*' "$d/usr/local/share/doc/vmsync/cron/vmsync.cron"); do
	[ -e "$d$p" ] || fail "vmsync.cron names $p, not installed"
	n=$((n + 1))
done
[ "$n" -eq 2 ] || fail "vmsync.cron names $n programs, not 2"
for s in usr/local/lib/vmsync/vmsync-run usr/local/bin/vmsync-snapper \
	usr/lib/snapper/plugins/50-vmsync etc/vmsync/EXAMPLE.conf; do
	sh -n "$d/$s" || fail "$s: syntax"
done
# The example config configures nothing: vmsync@EXAMPLE fails at once.
rc=0
"$d/usr/local/lib/vmsync/vmsync-run" "$d/etc/vmsync/EXAMPLE.conf" 2> "$TMP/err" || rc=$?
[ $rc -eq 1 ] && grep -q 'SOURCES and DEST must be set' "$TMP/err" ||
	fail "EXAMPLE.conf: exit $rc: $(cat "$TMP/err")"

# A second install over the first changes nothing; uninstall then
# removes everything, directories included.
mk install DESTDIR="$d"
(cd "$d" && find . -type f | sort) | diff -u "$TMP/want" - || fail "second install"
mk uninstall DESTDIR="$d"
[ -z "$(ls -A "$d")" ] || { find "$d"; fail "uninstall left files"; }

# --- Every directory changed: nothing names a default place.
d2=$TMP/dest2
dirs=(PREFIX=/opt/vs BINDIR=/opt/vs/sbin LIBEXECDIR=/opt/vs/libexec
	MANDIR=/opt/vs/man SYSTEMDUNITDIR=/opt/vs/units SYSCONFDIR=/opt/vs/etc
	DOCDIR=/opt/vs/doc SNAPPERPLUGINDIR=/opt/vs/snapper)
mk install DESTDIR="$d2" "${dirs[@]}"
(cd "$d2" && find . -type f | sort) > "$TMP/files2"
[ "$(wc -l < "$TMP/files2")" -eq "$(wc -l < "$TMP/want")" ] ||
	fail "$(cat "$TMP/files2")"
! grep -n '^\./' "$TMP/files2" | grep -v '^[0-9]*:\./opt/vs/' || fail "outside /opt/vs"
for f in sbin/vmsync-snapper libexec/vmsync/vmsync-run snapper/50-vmsync \
	units/vmsync@.service units/vmsync@.timer doc/cron/vmsync.cron; do
	! grep -v '^[[:space:]]*#\|^PATH=' "$d2/opt/vs/$f" | sed 's|/opt/vs/[^ ]*||g' |
		grep '/usr/local\|/etc/vmsync' ||
		fail "$f names a default place"
done
grep -qx 'ExecStart=/opt/vs/libexec/vmsync/vmsync-run /opt/vs/etc/vmsync/%i.conf' \
	"$d2/opt/vs/units/vmsync@.service" || fail "ExecStart with LIBEXECDIR"
mk uninstall DESTDIR="$d2" "${dirs[@]}"
[ -z "$(ls -A "$d2")" ] || { find "$d2"; fail "uninstall left files"; }

# --- An existing config is kept, by install and by uninstall; so is one
# changed after install.
d3=$TMP/dest3
mkdir -p "$d3/etc/vmsync"
echo 'SOURCES=/mine' > "$d3/etc/vmsync/EXAMPLE.conf"
mk install DESTDIR="$d3"
[ "$(cat "$d3/etc/vmsync/EXAMPLE.conf")" = SOURCES=/mine ] || fail "config overwritten"
grep -q EXAMPLE.conf "$d3/usr/local/lib/vmsync/install-manifest" &&
	fail "a config install did not write is in the manifest"
mk uninstall DESTDIR="$d3"
(cd "$d3" && find . | sort) > "$TMP/left"
printf '.\n./etc\n./etc/vmsync\n./etc/vmsync/EXAMPLE.conf\n' | diff -u - "$TMP/left" ||
	fail "uninstall with an existing config"
[ "$(cat "$d3/etc/vmsync/EXAMPLE.conf")" = SOURCES=/mine ] || fail "config changed"

d4=$TMP/dest4
mk install DESTDIR="$d4"
echo 'DEST=/changed' >> "$d4/etc/vmsync/EXAMPLE.conf"
mk uninstall DESTDIR="$d4"
grep -q 'KEEP.*EXAMPLE.conf' "$TMP/make.out" || fail "no word on the kept config"
(cd "$d4" && find . -type f) | diff -u - <(echo ./etc/vmsync/EXAMPLE.conf) ||
	fail "uninstall with a changed config"

# --- Under a PREFIX in $TMP without DESTDIR: the units' paths exist, so
# systemd-analyze can check them, and vmsync-run runs the installed vmsync.
p=$TMP/prefix
pdirs=(PREFIX="$p" SYSCONFDIR="$p/etc" SNAPPERPLUGINDIR="$p/snapper")
mk install "${pdirs[@]}"
[ -f "$p/etc/vmsync/EXAMPLE.conf" ] || fail "no EXAMPLE.conf under SYSCONFDIR"
grep -qx "ExecStart=$p/lib/vmsync/vmsync-run $p/etc/vmsync/%i.conf" \
	"$p/lib/systemd/system/vmsync@.service" || fail "ExecStart under PREFIX"
if command -v systemd-analyze > /dev/null; then
	mkdir "$TMP/units"
	cp "$p/lib/systemd/system/vmsync@.service" "$TMP/units/vmsync@EXAMPLE.service"
	cp "$p/lib/systemd/system/vmsync@.timer" "$TMP/units/vmsync@EXAMPLE.timer"
	(cd "$TMP/units" && systemd-analyze verify --man=no ./vmsync@EXAMPLE.service \
		./vmsync@EXAMPLE.timer) > "$TMP/verify" 2>&1 ||
		{ cat "$TMP/verify"; fail "systemd-analyze verify failed"; }
	[ ! -s "$TMP/verify" ] || { cat "$TMP/verify"; fail "systemd-analyze verify warned"; }
fi
"$HOLES" make "$TMP/disk.img" 8M 0:1M:1 4M:512K:2
mkdir "$TMP/backup"
printf 'SOURCES=%s\nDEST=%s/\n' "$TMP/disk.img" "$TMP/backup" > "$p/etc/vmsync/t192.conf"
(unset VMSYNC; PATH=/usr/bin:/bin "$p/lib/vmsync/vmsync-run" "$p/etc/vmsync/t192.conf") \
	> "$TMP/run.out" 2>&1 || { cat "$TMP/run.out"; fail "installed vmsync-run"; }
same "$TMP/disk.img" "$TMP/backup/disk.img"
rm "$p/etc/vmsync/t192.conf"
mk uninstall "${pdirs[@]}"
[ ! -e "$p" ] || { find "$p"; fail "uninstall left $p"; }
