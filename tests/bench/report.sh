#!/bin/sh
# report.sh META ROWS SCALE OUT.md OUT.json [FLEET]: the bench tables and
# target ratios, from the tab-separated files tests/bench/run.sh writes.
#   META:  key, value
#   ROWS:  format day tool elapsed user sys rss_kib source_read target_read
#          target_written equal target_alloc source_alloc stale new_data
#          guest_changed ("-" where a measure does not apply)
#   SCALE: size run tool elapsed user sys rss_kib source_read target_read
#          target_written
#   FLEET: format day clients elapsed user sys rss_kib source_read
#          target_read target_written equal slowest_s fastest_s guest_data
#          snapshots other_entries guest_changed (optional: older runs
#          have none)
set -eu
META=$1 ROWS=$2 SCALE=$3 MD=$4 JSON=$5 FLEET=${6:-/dev/null}

awk -F '\t' -v meta="$META" -v scale="$SCALE" -v fleet="$FLEET" '
function mib(b) { return b == "-" ? "-" : sprintf("%.0f", b / 1048576) }
function ratio(a, b) { return (b > 0) ? sprintf("%.2f", a / b) : "-" }
function verdict(ok) { return ok ? "met" : "**not met**" }
BEGIN {
	while ((getline l < meta) > 0) {
		split(l, kv, "\t")
		m[kv[1]] = kv[2]
	}
	print "# vmsync benchmark, " m["size"] " guest disk"
	print ""
	print "vmsync: " m["vmsync"] "; machine: " m["machine"] "; seed " \
	    m["seed"] ". Caches dropped before each run; each time includes a syncfs of the target filesystem."
	if (m["repeat"] > 1)
		print "First syncs (day 0) ran " m["repeat"] " times each, the tools taking turns, and readalloc " m["repeat"] " times a day; their rows show the run of median time. Incremental runs ran once, but for the large change (as many times as the first syncs, taking turns)."
	print "Sizes in MiB. *new data*: `btrfs filesystem du` exclusive bytes of the target after the run, against a read-only snapshot taken after the run before; *changed*: 4 KiB sectors of the guest disk that hold new non-zero data (what a perfect incremental backup writes); *stale*: bytes the target holds where the source has a hole."
}
{
	fmt = $1; day = $2; tool = $3
	if (fmt != last) {
		print ""
		print "## " fmt " image"
		print ""
		print "| day | tool | time s | CPU s | source read | target read | target written | peak RSS | equal | target / source alloc | stale | new data | changed | new / changed |"
		print "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"
		last = fmt
	}
	alloc = ($12 == "-") ? "-" : mib($12) " / " mib($13)
	nr = ($15 == "-" || $16 == "-") ? "-" : ratio($15, $16)
	printf "| %s | %s | %.2f | %.2f | %s | %s | %s | %.1f | %s | %s | %s | %s | %s | %s |\n",
	    day, tool, $4, $5 + $6, mib($8), mib($9), mib($10), $7 / 1024,
	    $11, alloc, mib($14), mib($15), mib($16), nr
	t[fmt, day, tool] = $4
	newd[fmt, day, tool] = $15
	chg[fmt, day] = $16
	stl[fmt, day, tool] = $14
	eq[fmt, day, tool] = $11
	srd[fmt, day, tool] = $8
	if (tool ~ /^vmsync/ && $7 > maxrss) maxrss = $7
	if (!(fmt in fmts)) forder[++nf] = fmt
	fmts[fmt] = 1
	if (day > maxday) maxday = day
}
END {
	# Pushes through sshd, as ratios to btrfs send | ssh btrfs receive.
	n = split("vmsync-push vmsync-push-full rsync-ssh", pt, " ")
	hdr = 0
	for (i = 1; i <= nf; i++) for (d = 0; d <= maxday; d++) {
		f = forder[i]; b = t[f, d, "btrfs-send-ssh"]
		if (b == "")
			continue
		if (!hdr++) {
			print ""
			print "## Push over ssh"
			print ""
			print "Each push runs through an sshd on 127.0.0.1 (cipher chacha20-poly1305@openssh.com) into the target btrfs; its time as a ratio to `btrfs send | ssh btrfs receive` of the same day (day 0 a full send, later days `-p` the day before), time in s in brackets. CPU s in the table above counts the client side only (the server runs under sshd)."
			print ""
			printf "| format | day | btrfs send \\| ssh receive s |"
			for (k = 1; k <= n; k++) printf " %s |", pt[k]
			printf "\n|---|---|---:|"
			for (k = 1; k <= n; k++) printf "---:|"
			printf "\n"
		}
		printf "| %s | %d | %.2f |", f, d, b
		for (k = 1; k <= n; k++) {
			v = t[f, d, pt[k]]
			if (v == "") printf " - |"
			else printf " %s (%.2f) |", ratio(v, b), v
		}
		printf "\n"
	}
	# The fleet: many clients pushing at once into one subvolume.
	hdr = 0
	while ((getline l < fleet) > 0) {
		split(l, c, "\t")
		if (!hdr++) {
			print ""
			print "## Fleet: clients pushing at once"
			print ""
			print "Each client pushes its own reflink copy of the image through the same sshd, with `--snapshot`, into one subvolume. *guest data*: allocated bytes of all the images; *aggregate*: guest data / wall time; *wall*: from the first client started to the last done, with a syncfs of the target; *slowest*, *fastest*: a client'"'"'s own time; *snapshots*: how many the runs left in `.vmsync-snapshots/`, and other entries there after the run (a snapshot left under its temporary name), if any; CPU s counts the clients only."
			print ""
			print "| format | day | clients | wall s | slowest client s | fastest client s | CPU s | guest data | aggregate MiB/s | source read | target written | snapshots | equal |"
			print "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
		}
		printf "| %s | %s | %s | %.2f | %.2f | %.2f | %.2f | %s | %.0f | %s | %s | %s | %s |\n",
		    c[1], c[2], c[3], c[4], c[12], c[13], c[5] + c[6],
		    mib(c[14]), (c[4] > 0) ? c[14] / 1048576 / c[4] : 0,
		    mib(c[8]), mib(c[10]),
		    c[15] (c[16] > 0 ? " + " c[16] " other" : ""), c[11]
		if (c[11] == "NO")
			fleetbad = fleetbad sprintf("- %s day %d: **a fleet client left a target that differs from its source**\n", c[1], c[2])
	}
	n = 0
	while ((getline l < scale) > 0) {
		split(l, c, "\t")
		if (n++ == 0) {
			print ""
			print "## Scaling: sparse raw images, 1/256 of them data"
			print ""
			print "| size | run | tool | time s | CPU s | peak RSS MiB | source read | target written |"
			print "|---|---|---|---:|---:|---:|---:|---:|"
		}
		printf "| %s | %s | %s | %.2f | %.2f | %.1f | %s | %s |\n",
		    c[1], c[2], c[3], c[4], c[5] + c[6], c[7] / 1024,
		    mib(c[8]), mib(c[10])
		if (c[3] == "vmsync" && c[7] > maxrss) maxrss = c[7]
	}
	# Only the archive or foreign rows ran: their tables say it all.
	if (length(fmts) == 0 && n == 0)
		exit
	print ""
	print "## Targets"
	print ""
	for (f in fmts) for (d = 1; d <= maxday; d++) {
		v = t[f, d, "vmsync-full"]; r = t[f, d, "readalloc"]
		if (v != "" && r != "")
			printf "- %s day %d: vmsync-full (reads every allocated byte) %.2f s / reading the allocated source bytes once %.2f s = %s (target <= 1.2): %s\n",
			    f, d, v, r, ratio(v, r), verdict(v <= 1.2 * r)
		split("vmsync vmsync-full", vt, " ")
		for (i = 1; i <= 2; i++) {
			nd = newd[f, d, vt[i]]
			if (nd != "" && nd != "-")
				printf "- %s day %d: %s new btrfs data %s MiB / guest changed %s MiB = %s (target <= 1.1), stale %s MiB: %s\n",
				    f, d, vt[i], mib(nd), mib(chg[f, d]),
				    ratio(nd, chg[f, d]), mib(stl[f, d, vt[i]]),
				    verdict(nd <= 1.1 * chg[f, d] &&
				    stl[f, d, vt[i]] == 0)
		}
	}
	for (f in fmts) {
		best = ""
		split("qemu-img-convert nbdcopy cp", first, " ")
		for (i = 1; i <= 3; i++)
			if (t[f, 0, first[i]] != "" && (best == "" || t[f, 0, first[i]] < best)) {
				best = t[f, 0, first[i]]; bt = first[i]
			}
		v = t[f, 0, "vmsync"]
		if (v != "" && best != "")
			printf "- %s first sync: vmsync %.2f s / fastest of qemu-img convert, nbdcopy, cp (%s) %.2f s = %s (target <= 1.0): %s\n",
			    f, v, bt, best, ratio(v, best), verdict(v <= best)
		q = t[f, 0, "qemu-img-convert"]; n = t[f, 0, "vmsync-full"]
		if (v != "" && q != "")
			printf "- %s first sync: vmsync %.2f s / qemu-img convert %.2f s = %s (target <= 1.0): %s%s\n",
			    f, v, q, ratio(v, q), verdict(v <= q),
			    n != "" ? sprintf("; --source-snapshot=never %.2f s = %s", n, ratio(n, q)) : ""
	}
	if (maxrss > 0)
		printf "- peak RSS of vmsync over every run above: %.1f MiB (target <= 64): %s\n",
		    maxrss / 1024, verdict(maxrss <= 65536)
	for (f in fmts) for (d = 1; d <= maxday; d++) {
		v = t[f, d, "vmsync"]; b = t[f, d, "btrfs-send"]
		r1 = t[f, d, "rsync-inplace"]; r2 = t[f, d, "rsync-inplace-sparse"]
		r = (r1 != "" && (r2 == "" || r1 < r2)) ? r1 : r2
		if (v != "" && b != "" && r != "")
			printf "- %s day %d: vmsync with change detection %.2f s / btrfs send -p | receive %.2f s = %s (target <= 1.2): %s; / faster rsync in place %.2f s = %s (target <= 0.05): %s\n",
			    f, d, v, b, ratio(v, b), verdict(v <= 1.2 * b),
			    r, ratio(v, r), verdict(v <= 0.05 * r)
		s = srd[f, d, "vmsync"]
		if (s != "" && chg[f, d] > 0)
			printf "- %s day %d: vmsync with change detection read %s MiB of the source for %s MiB the guest changed (%s)\n",
			    f, d, mib(s), mib(chg[f, d]), ratio(s, chg[f, d])
	}
	for (f in fmts) for (d = 0; d <= maxday; d++)
		for (k in eq) {
			split(k, p, SUBSEP)
			if (p[1] == f && p[2] == d && eq[k] == "NO")
				printf "- %s day %d: **%s left a target that differs from the source**\n", f, d, p[3]
		}
	printf "%s", fleetbad
}' "$ROWS" > "$MD"

# The same rows as JSON, numbers as numbers.
jq -n -R --rawfile meta "$META" --rawfile rows "$ROWS" --rawfile scale "$SCALE" \
    --rawfile fleet "$FLEET" '
def num: if . == "-" then null elif test("^[0-9.]+$") then tonumber else . end;
def table($keys): split("\n") | map(select(length > 0) | split("\t") |
	[$keys, map(num)] | transpose | map({(.[0]): .[1]}) | add);
{
  meta: ($meta | split("\n") | map(select(length > 0) | split("\t") |
	{(.[0]): .[1]}) | add),
  runs: ($rows | table(["format", "day", "tool", "elapsed_s", "user_s",
	"sys_s", "max_rss_kib", "source_read", "target_read",
	"target_written", "equal", "target_alloc", "source_alloc", "stale",
	"new_data", "guest_changed"])),
  scaling: ($scale | table(["size", "run", "tool", "elapsed_s", "user_s",
	"sys_s", "max_rss_kib", "source_read", "target_read",
	"target_written"])),
  fleet: ($fleet | table(["format", "day", "clients", "elapsed_s", "user_s",
	"sys_s", "max_rss_kib", "source_read", "target_read",
	"target_written", "equal", "slowest_s", "fastest_s", "guest_data",
	"snapshots", "other_entries", "guest_changed"]))
}' > "$JSON"
