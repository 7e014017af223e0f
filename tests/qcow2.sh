# tests/qcow2.sh - qcow2 helpers, sourced by the qcow2 tests after
# tests/functions.sh.  Every image is opened with -f qcow2 (never probed).
#
# QU                     set to -U to let qemu-img read an image a running
#                        qemu holds (force share); empty by default
# M                      1 MiB
# vsize IMG              virtual size of a qcow2 image
# qmap_data IMG          "start length" of each range `qemu-img map` calls
#                        data:true,zero:false (the whole chain flattened)
# qmap_top IMG           the same for the image's own layer (depth 0)
# qmap_host IMG GUEST    host offset of the guest byte GUEST (must be data)
# holds FILE OFF LEN     FILE has data (SEEK_DATA) all over [OFF, OFF + LEN)
# sum_ranges FILE        total length of the "start length" lines in FILE
# ranges_inside A B G    every range of file A lies inside the union of the
#                        ranges of file B, each widened to multiples of G
# guest_ok IMG RAW       RAW is the guest disk of IMG: size, qemu-img compare,
#                        cmp against qemu-img convert, allocation inside the
#                        data ranges of qemu-img map (at 4 KiB granularity)
# file_ok SRC TGT        TGT is the file view of SRC: same size, qemu-img
#                        check clean, guest disks equal, and every byte of
#                        TGT is SRC's byte or a zero (only_zeroed)
# only_zeroed SRC TGT    every allocated byte of TGT equals SRC's or is zero
# both_views IMG DIR     sync IMG into DIR in both views, check both
# poke FILE OFF HEX...   write the bytes given as hex pairs at OFF
# be32 FILE OFF, be64 FILE OFF   big-endian integers of FILE
# metadata_allowance IMG bytes of live metadata a small image may have:
#                        header, L1, refcount table, refcount block and the
#                        L2 tables, plus slack (see there)
# shellcheck disable=SC2034,SC2086
M=1048576
QU=${QU:-}

vsize() {
	qemu-img info $QU --output=json -f qcow2 "$1" | jq -r '.["virtual-size"]'
}

qmap_data() {
	qemu-img map $QU --output=json -f qcow2 "$1" |
		jq -r '.[] | select(.data and (.zero | not)) |
			"\(.start) \(.length)"'
}

qmap_top() {
	qemu-img map $QU --output=json -f qcow2 "$1" |
		jq -r '.[] | select(.depth == 0 and .data and (.zero | not)) |
			"\(.start) \(.length)"'
}

qmap_host() {
	qemu-img map $QU --output=json -f qcow2 "$1" | jq -r --argjson g "$2" \
		'.[] | select(.start <= $g and $g < .start + .length and .data
			and .offset != null) | .offset + $g - .start'
}

holds() {
	data_ranges "$1" | awk -v o="$2" -v l="$3" '$1 != "total" &&
		$1 <= o && o + l <= $1 + $2 { f = 1 } END { exit !f }'
}

sum_ranges() {
	awk '$1 != "total" { t += $2 } END { printf "%d\n", t }' "$1"
}

ranges_inside() {
	awk -v g="$3" '
	NR == FNR {
		if ($1 == "total" || $2 == 0)
			next
		s = $1 - $1 % g
		e = $1 + $2
		if (e % g)
			e += g - e % g
		if (n && s <= E[n]) {
			if (e > E[n])
				E[n] = e
		} else {
			n++
			S[n] = s
			E[n] = e
		}
		next
	}
	$1 != "total" && $2 > 0 {
		ok = 0
		for (i = 1; i <= n; i++)
			if (S[i] <= $1 && $1 + $2 <= E[i]) {
				ok = 1
				break
			}
		if (!ok) {
			printf "range %d+%d lies outside the data ranges\n", $1, $2
			bad = 1
		}
	}
	END { exit bad }' "$2" "$1"
}

only_zeroed() {
	local src=$1 tgt=$2 off len bad
	while read -r off len; do
		[ "$off" = total ] && continue
		# cmp -l: byte number, then both bytes in octal; a differing
		# byte of the target must be a zero (a dead byte dropped).
		bad=$( { cmp -l -i "$off" -n "$len" "$src" "$tgt" || true; } |
			awk '$3 != 0 { n++ } END { print n + 0 }')
		[ "$bad" -eq 0 ] ||
			fail "$tgt: $bad bytes in $off+$len are neither the source's nor zero"
	done < <(data_ranges "$tgt")
}

guest_ok() {
	local img=$1 raw=$2 what=${3:-$1}
	[ "$(stat -c %s "$raw")" -eq "$(vsize "$img")" ] ||
		fail "$what: guest view size $(stat -c %s "$raw") != $(vsize "$img")"
	qemu-img compare $QU -q -f qcow2 -F raw "$img" "$raw" ||
		fail "$what: qemu-img compare of the guest view"
	qemu-img convert $QU -f qcow2 -O raw "$img" "$TMP/ref.raw"
	cmp "$TMP/ref.raw" "$raw" || fail "$what: guest view != qemu-img convert"
	rm -f "$TMP/ref.raw"
	data_ranges "$raw" > "$TMP/raw.ranges"
	qmap_data "$img" > "$TMP/map.ranges"
	ranges_inside "$TMP/raw.ranges" "$TMP/map.ranges" 4096 ||
		fail "$what: guest view holds data outside qemu-img map's data"
}

file_ok() {
	local src=$1 tgt=$2 what=${3:-$1}
	[ "$(stat -c %s "$tgt")" -eq "$(stat -c %s "$src")" ] ||
		fail "$what: file view size $(stat -c %s "$tgt") != $(stat -c %s "$src")"
	qemu-img check -q -f qcow2 "$tgt" ||
		fail "$what: qemu-img check of the file view exits $?"
	qemu-img compare $QU -q -f qcow2 -F qcow2 "$src" "$tgt" ||
		fail "$what: qemu-img compare of the file view"
	only_zeroed "$src" "$tgt"
}

both_views() {
	local img=$1 dir=$2 name
	name=$(basename "$img" .qcow2)
	vs -q "$img" "$dir/" || fail "vmsync $img (file view) exits $?"
	vs -q -O raw "$img" "$dir/" || fail "vmsync -O raw $img exits $?"
	file_ok "$img" "$dir/$name.qcow2"
	guest_ok "$img" "$dir/$name.raw"
}

poke() {
	local file=$1 off=$2 fmt=""
	shift 2
	for b in "$@"; do
		fmt="$fmt\\x$b"
	done
	# shellcheck disable=SC2059
	printf "$fmt" | dd of="$file" bs=1 seek="$off" conv=notrunc status=none
}

be32() {
	od -An -tu1 -j "$2" -N 4 "$1" |
		awk '{ v = 0; for (i = 1; i <= NF; i++) v = v * 256 + $i; printf "%d\n", v }'
}

be64() {
	od -An -tu1 -j "$2" -N 8 "$1" |
		awk '{ v = 0; for (i = 1; i <= NF; i++) v = v * 256 + $i; printf "%d\n", v }'
}

# The live metadata of an image of at most 512 MiB per L2 table: cluster 0
# (header, extensions, backing name), the L1 table, the refcount table, a
# refcount block per 2^(2*cluster_bits - 4) bytes of file (16-bit refcounts:
# one block covers 2 GiB at 64 KiB clusters) and one L2 table per L1 entry
# in use; 4 clusters plus the L2 tables, doubled for slack (an L1 or
# refcount table spanning two clusters, a snapshot table).
metadata_allowance() {
	local img=$1 cs l2
	cs=$(qemu-img info $QU --output=json -f qcow2 "$img" | jq -r '.["cluster-size"]')
	l2=$(( ($(vsize "$img") + cs * (cs / 8) - 1) / (cs * (cs / 8)) ))
	echo $(( 2 * (4 + l2) * cs ))
}
