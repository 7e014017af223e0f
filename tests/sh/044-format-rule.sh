#!/usr/bin/env bash
# Proves: the guest's bytes never decide how an image is read.  A raw
# disk whose guest wrote a qcow2 header (naming a backing file elsewhere)
# into sector 0 is backed up as the raw disk it is, with one warning, in
# both views, and the backing file is never read; the next run reads it
# as raw on the target's record, without a warning.  A qcow2 format is
# used when --format, the name (.qcow2) or the target's record (an
# earlier --format=qcow2 run) confirms it; a name or record that
# disagrees with the content is refused (exit 2, naming --format) and the
# backup is left alone.  A whole-disk LUKS guest is copied, never
# refused.  Over the protocol the same holds: a push's record lives on
# the server, a pull's on the client.
. "$VMSYNC_TOP/tests/functions.sh"
requires qemu-img jq

IDX="$VMSYNC_HELPERS/idxforge"
M=1048576
mkdir "$TMP/host" "$TMP/vms" "$TMP/b1" "$TMP/b2" "$TMP/b3"
echo "TOP SECRET host file" > "$TMP/host/secret"

# (a) A guest disk starting with a forged qcow2 header.
qemu-img create -q -f qcow2 -u -b "$TMP/host/secret" -F raw "$TMP/h.qcow2" 1M
g=$TMP/vms/g.img
"$HOLES" make "$g" 64M 8M:1M:7 40M:2M:8
dd if="$TMP/h.qcow2" of="$g" conv=notrunc status=none
vs "$g" "$TMP/b1/" 2> "$TMP/err" || fail "forged header: exit $?"
same "$g" "$TMP/b1/g.img"
grep -q "^vmsync: warning: $g: starts like a qcow2 image, but neither" \
	"$TMP/err" && [ "$(wc -l < "$TMP/err")" -eq 1 ] ||
	fail "forged header: not one warning: $(cat "$TMP/err")"
[ "$("$IDX" get "$TMP/b1/.g.img.vmsync-index" format)" = raw ] ||
	fail "the index does not record raw"
vs -O raw "$g" "$TMP/b2/" 2> "$TMP/err" || fail "-O raw: exit $?"
[ "$(ls "$TMP/b2")" = g.img ] || fail "-O raw of a raw disk: $(ls "$TMP/b2")"
same "$g" "$TMP/b2/g.img"
! grep -rq "TOP SECRET" "$TMP/b1" "$TMP/b2" || fail "the backing file was read"
# The record says raw: no warning any more, nothing to do.
sync_stats -v "$g" "$TMP/b1/" 2> "$TMP/err"
grep -q "read as raw (the target's record)" "$TMP/err" ||
	fail "record not used: $(cat "$TMP/err")"
! grep -q warning "$TMP/err" || fail "warned again: $(cat "$TMP/err")"
[ "$(stat_of written_bytes)" -eq 0 ] || fail "second run wrote"

# (b) A real qcow2 under a name that does not say so.
q=$TMP/vms/vm.img
qemu-img create -q -f qcow2 "$q" 64M
qemu-io -f qcow2 -c "write -P 0x5a 0 4M" -c "write -P 0x33 20M 1M" "$q" >/dev/null
vs "$q" "$TMP/b3/" 2> "$TMP/err"
grep -q "starts like a qcow2 image" "$TMP/err" || fail "no warning for vm.img"
cmp "$q" "$TMP/b3/vm.img" || fail "vm.img not copied as it is"
# Confirmed once with --format, then by the record.
qemu-io -f qcow2 -c "discard 0 4M" "$q" >/dev/null
vs -f qcow2 "$q" "$TMP/b3/" || fail "--format=qcow2: exit $?"
[ "$("$IDX" get "$TMP/b3/.vm.img.vmsync-index" format)" = qcow2 ] ||
	fail "the index does not record qcow2"
qemu-img compare -q "$q" "$TMP/b3/vm.img" || fail "qcow2 view differs"
qemu-io -f qcow2 -c "write -P 0x44 30M 64K" "$q" >/dev/null
sync_stats -v "$q" "$TMP/b3/" 2> "$TMP/err"
grep -q "read as qcow2 (the target's record)" "$TMP/err" ||
	fail "record did not confirm qcow2: $(cat "$TMP/err")"
! grep -q warning "$TMP/err" || fail "warned: $(cat "$TMP/err")"
qemu-img compare -q "$q" "$TMP/b3/vm.img" || fail "qcow2 view differs after update"
qemu-img check -q "$TMP/b3/vm.img" || fail "backup fails qemu-img check"
# The file is no longer a qcow2 image: refused, backup left alone.
cp "$TMP/b3/vm.img" "$TMP/before"
"$HOLES" make "$q" 64M 0:1M:9
must_fail 2 "^vmsync: $q: the last sync read it as qcow2, but it is not a qcow2 image now \(use --format=raw" \
	vs "$q" "$TMP/b3/"
cmp "$TMP/before" "$TMP/b3/vm.img" || fail "refused run changed the backup"
sync_stats -f raw "$q" "$TMP/b3/" || fail "--format=raw after the refusal"
same "$q" "$TMP/b3/vm.img"

# (c) A name that says qcow2 over other content is refused.
"$HOLES" make "$TMP/vms/fake.qcow2" 16M 0:1M:3
must_fail 2 "fake.qcow2: named as a qcow2 image, but it is not one" \
	vs "$TMP/vms/fake.qcow2" "$TMP/b3/"
[ ! -e "$TMP/b3/fake.qcow2" ] || fail "fake.qcow2: target created"

# (d) A whole-disk LUKS guest is data.
l=$TMP/vms/crypt.img
"$HOLES" make "$l" 32M 0:2M:4 30M:1M:5
printf 'LUKS\272\276\000\002' | dd of="$l" conv=notrunc status=none
vs "$l" "$TMP/b3/" 2> "$TMP/err" || fail "LUKS guest: exit $?"
[ ! -s "$TMP/err" ] || fail "LUKS guest: $(cat "$TMP/err")"
same "$l" "$TMP/b3/crypt.img"
# (e) Remote: the record of a push is the server's, of a pull the
# client's.
mkdir "$TMP/b4" "$TMP/r"
qemu-img create -q -f qcow2 "$q" 64M
qemu-io -f qcow2 -c "write -P 0x21 0 2M" "$q" >/dev/null
rvs "$q" "host:$TMP/b4/" 2> "$TMP/err"
grep -q "starts like a qcow2 image" "$TMP/err" || fail "push: no warning"
cmp "$q" "$TMP/b4/vm.img" || fail "push: not copied as it is"
rvs -f qcow2 "$q" "host:$TMP/b4/" || fail "push --format=qcow2"
[ "$("$IDX" get "$TMP/b4/.vm.img.vmsync-index" format)" = qcow2 ] ||
	fail "push: the server's index does not record qcow2"
qemu-io -f qcow2 -c "write -P 0x22 8M 64K" "$q" >/dev/null
rvs -v "$q" "host:$TMP/b4/" 2> "$TMP/err"
grep -q "read as qcow2 (the target's record)" "$TMP/err" ||
	fail "push: record did not confirm: $(cat "$TMP/err")"
qemu-img compare -q "$q" "$TMP/b4/vm.img" || fail "push: qcow2 view differs"
# Pull the backup back: the client's record decides.
rvs "host:$TMP/b4/vm.img" "$TMP/r/" 2> "$TMP/err"
grep -q "starts like a qcow2 image" "$TMP/err" || fail "pull: no warning"
cmp "$TMP/b4/vm.img" "$TMP/r/vm.img" || fail "pull: not copied as it is"
rvs -f qcow2 "host:$TMP/b4/vm.img" "$TMP/r/" || fail "pull --format=qcow2"
[ "$("$IDX" get "$TMP/r/.vm.img.vmsync-index" format)" = qcow2 ] ||
	fail "pull: the client's index does not record qcow2"
rvs "host:$TMP/b4/vm.img" "$TMP/r/" 2> "$TMP/err"
[ ! -s "$TMP/err" ] || fail "pull: $(cat "$TMP/err")"
[ "$("$IDX" get "$TMP/r/.vm.img.vmsync-index" format)" = qcow2 ] ||
	fail "pull: record did not confirm qcow2"
qemu-img compare -q "$TMP/b4/vm.img" "$TMP/r/vm.img" || fail "pull differs"
echo "format rule holds"
