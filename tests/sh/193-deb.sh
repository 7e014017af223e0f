#!/usr/bin/env bash
# Proves `make deb` builds a Debian package that installs and goes away
# cleanly:
#  - the .deb lands in DEBDIR, the tree is left as it was; its version is
#    vmsync's; it depends on the libraries vmsync links, recommends
#    qemu-utils and openssh-client, suggests snapper;
#  - lintian reports no error;
#  - dpkg -i installs it: vmsync --version runs, a real sync works, every
#    part is where the package says, and no unit is enabled;
#  - dpkg -r leaves nothing but the conffile /etc/vmsync/EXAMPLE.conf, and
#    dpkg -P nothing at all (every path that did not exist before is gone).
. "$VMSYNC_TOP/tests/functions.sh"
requires_root
requires make dpkg-buildpackage dh lintian fakeroot dpkg-deb

if dpkg-query -W -f='${Status}' vmsync 2>/dev/null | grep -q 'ok installed\|config-files'; then
	# Left by an interrupted run of this test.
	dpkg -P vmsync > /dev/null
fi

# An EXAMPLE.conf from a make install would make dpkg ask about it.
if [ -e /etc/vmsync/EXAMPLE.conf ]; then
	mv /etc/vmsync/EXAMPLE.conf "$TMP/EXAMPLE.conf.saved"
	cleanup_fn "mv '$TMP/EXAMPLE.conf.saved' /etc/vmsync/EXAMPLE.conf"
fi

unset MAKEFLAGS MFLAGS MAKELEVEL
deb=$TMP/deb
(cd "$VMSYNC_TOP" && git status --porcelain --ignored -- debian 2>/dev/null) > "$TMP/before" || true
make -C "$VMSYNC_TOP" deb DEBDIR="$deb" DEB_BUILD_OPTIONS="nocheck noddebs parallel=$(nproc)" \
	> "$TMP/build.log" 2>&1 || { tail -n 40 "$TMP/build.log"; fail "make deb"; }
(cd "$VMSYNC_TOP" && git status --porcelain --ignored -- debian 2>/dev/null) > "$TMP/after" || true
diff -u "$TMP/before" "$TMP/after" || fail "make deb left files in debian/"
[ ! -e "$deb/src" ] || fail "make deb left its copy of the tree"
version=$("$VMSYNC" --version | sed -n 's/^vmsync //p')
pkg=$deb/vmsync_${version}_$(dpkg --print-architecture).deb
[ -f "$pkg" ] || { ls -l "$deb"; fail "no $pkg (debian/changelog and vmsync --version differ?)"; }

dpkg-deb -f "$pkg" Depends > "$TMP/depends"
for lib in libxxhash0 libpopt0 libzstd1 zlib1g libbtrfsutil1 libarchive13 libnbd0; do
	grep -q "\b$lib\b" "$TMP/depends" || fail "Depends lacks $lib: $(cat "$TMP/depends")"
done
[ "$(dpkg-deb -f "$pkg" Recommends)" = "qemu-utils, openssh-client" ] || fail "Recommends"
[ "$(dpkg-deb -f "$pkg" Suggests)" = "snapper" ] || fail "Suggests"

lintian --tag-display-limit 0 "$pkg" > "$TMP/lintian" 2>&1 || true
cat "$TMP/lintian"
! grep -q '^E: ' "$TMP/lintian" || fail "lintian reports errors"

# Every path of the package, and whether it exists before the install.
dpkg-deb -c "$pkg" | awk '{ print $6 }' | sed 's|^\.||; s|/$||' | grep . > "$TMP/paths"
while read -r p; do
	if [ -e "$p" ] || [ -L "$p" ]; then echo "$p"; fi
done < "$TMP/paths" > "$TMP/existed"
cleanup_fn "dpkg -P vmsync > /dev/null 2>&1"
dpkg -i "$pkg" > "$TMP/dpkg.log" 2>&1 || { cat "$TMP/dpkg.log"; fail "dpkg -i"; }

/usr/bin/vmsync --version | grep -qx "vmsync $version" || fail "installed vmsync --version"
"$HOLES" make "$TMP/disk.img" 8M 0:1M:1 3M:512K:2
/usr/bin/vmsync -q "$TMP/disk.img" "$TMP/backup/"
same "$TMP/disk.img" "$TMP/backup/disk.img"
for f in /usr/bin/vmsync-snapper /usr/lib/vmsync/vmsync-run \
	/usr/lib/snapper/plugins/50-vmsync; do
	[ -x "$f" ] || fail "$f not installed"
done
for f in /lib/systemd/system/vmsync@.service /lib/systemd/system/vmsync@.timer \
	/etc/vmsync/EXAMPLE.conf /usr/share/doc/vmsync/cron/vmsync.cron \
	/usr/share/man/man1/vmsync.1.gz /usr/share/man/man1/vmsync-snapper.1.gz; do
	[ -f "$f" ] || fail "$f not installed"
done
grep -qx 'ExecStart=/usr/lib/vmsync/vmsync-run /etc/vmsync/%i.conf' \
	/lib/systemd/system/vmsync@.service || fail "ExecStart"
dpkg-query -W -f='${Conffiles}\n' vmsync | grep -q '/etc/vmsync/EXAMPLE.conf' ||
	fail "EXAMPLE.conf is not a conffile"
[ -z "$(find /etc/systemd -name 'vmsync*' 2>/dev/null)" ] ||
	fail "a unit was enabled: $(find /etc/systemd -name 'vmsync*')"

# left: the paths of the package that exist now but did not before.
left() {
	while read -r p; do
		if [ -e "$p" ] || [ -L "$p" ]; then echo "$p"; fi
	done < "$TMP/paths" | grep -vxF -f "$TMP/existed" || true
}
dpkg -r vmsync > "$TMP/dpkg.log" 2>&1 || { cat "$TMP/dpkg.log"; fail "dpkg -r"; }
printf '/etc/vmsync\n/etc/vmsync/EXAMPLE.conf\n' | { grep -vxF -f "$TMP/existed" || true; } |
	diff -u - <(left) ||
	fail "dpkg -r left more than the conffile"
dpkg -P vmsync > "$TMP/dpkg.log" 2>&1 || { cat "$TMP/dpkg.log"; fail "dpkg -P"; }
[ -z "$(left)" ] || fail "dpkg -P left $(left)"
while read -r p; do
	[ -e "$p" ] || fail "$p existed before the install, not after the purge"
done < "$TMP/existed"
