#!/usr/bin/env bash
# Proves: an incremental archive whose changes would need more than 65536
# "hole" lines stays within that bound by storing the shortest holes as
# zero data, keeps the longer ones as hole lines, and still applies to a
# copy of its base giving the new generation exactly, with those ranges
# holes again and the index trusted.
#  - The base has 65600 separate 4 KiB blocks of data and three of 1 MiB;
#    the new generation has none of them (4 KiB index blocks, so each is
#    a hole of its own).
. "$VMSYNC_TOP/tests/functions.sh"
requires tar zstd

cd "$TMP" || fail "cd $TMP"
M=$((1 << 20))
mkdir p1 p2 g1 g2 ap
"$HOLES" make p1/vm.img 600M 540M:1M:7 560M:1M:8 580M:1M:9
seq 0 2 131199 | awk '{ printf "%d:4K:%d\n", $1 * 4096, $1 + 1 }' |
	xargs "$HOLES" fill p1/vm.img
"$HOLES" make p2/vm.img 600M 0:4K:99
vs -q -B 4096 p1/vm.img g1/ || fail "sync g1"
vs -q -B 4096 p2/vm.img g2/ || fail "sync g2"

vs --since g1/vm.img g2/vm.img inc.tar.zst || fail "export: exit $?"
zstd -q -t inc.tar.zst || fail "zstd -t"
tar -xOf inc.tar.zst vm.img.vmsync-delta > text || fail "tar -xOf"
n=$(grep -c '^hole ' text || true)
[ "$n" -ge 3 ] && [ "$n" -le 65536 ] || fail "$n hole lines"
for off in 540 560 580; do
	grep -qx "hole $((off * M)) $M" text || fail "no hole line at ${off}M: $(grep '^hole' text | tail -3)"
done

cp --sparse=always g1/vm.img ap/vm.img
vs inc.tar.zst ap/ || fail "apply: exit $?"
same ap/vm.img g2/vm.img
data_ranges ap/vm.img | awk -v s=$((4096)) '$1 != "total" && ($1 != 0 || $2 != s) { bad = 1 } END { exit bad }' ||
	fail "data left where the new generation has holes: $(data_ranges ap/vm.img | head)"
vs --verify ap/vm.img > /dev/null || fail "index not trusted after apply"
exit 0
