#!/usr/bin/env bash
# Proves: a sync writes the target and its index in the order that keeps
# an index from ever being clean while it describes data that is not
# durable (index.h, idx_begin_dirty and idx_commit_clean in index.c, the
# commit steps of local.c).  A kill leaves the page cache intact and so
# cannot show what a power cut loses; this test records one run's writes
# and flushes with strace (-f: threads, and the server of a push) and
# checks, by the order of the system calls:
#  1. the first write to the index is its header (offset 0) with the dirty
#     flag set, and an fdatasync of the index completes after it and before
#     any other change to the index (entries, resize) or to the target
#     (write, punch); only a resize of the target may come before it (the
#     size is part of the identity the index records, so a clean index is
#     not trusted after a resize alone, and a size the filesystem cannot
#     hold is refused with the index untouched);
#  2. every header written before the last one is dirty, and no entry or
#     sector record is written before the data it describes is durable:
#     every change to the target that completed before an entry write
#     began is followed by an fdatasync of the target that completes
#     before it (entries wait in memory, idx_hold in index.c);
#  3. the last header is clean and is the last change to the index; before
#     it begins, the target's data (fdatasync after its last change) and
#     its directory (fsync) are durable, and so are the entries (an
#     fdatasync of the index after its last entry write);
#  4. after it, an fdatasync of the index and an fsync of the index's
#     directory make the commit point and the index's name durable;
#  5. nothing changes the target once the clean header is being written.
# Runs: local onto a trusted index with changed and punched data, local
# with a grown source (the target is resized), a push through
# `vmsync --server` onto a trusted index, and a push onto an index the
# server must rebuild (it stores the target's hashes while dirty).
. "$VMSYNC_TOP/tests/functions.sh"
requires strace python3 jq fallocate

M=1048576
src=$TMP/disk.img
"$HOLES" make "$src" 64M 0:8M:1 20M:4M:2 40M:1M:3
mkdir "$TMP/local" "$TMP/push"
tgt=$(realpath "$TMP/local")/disk.img
ptgt=$(realpath "$TMP/push")/disk.img
vs -q "$src" "$TMP/local/"
rvs -q "$src" "host:$TMP/push/"
same "$src" "$tgt"
same "$src" "$ptgt"

# trace OUT CMD...: run CMD under strace, the trace in OUT, stdout in
# OUT.json.  LeakSanitizer cannot work under ptrace (SANITIZE=1): the
# other tests look for leaks.
trace() {
	local out=$1
	shift
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
		strace -f -y -xx -s 32 -o "$out" \
		-e trace=pwrite64,pwritev,pwritev2,write,writev,fdatasync,fsync,ftruncate,fallocate,openat \
		"$@" > "$out.json" || fail "$* exits $?"
}

# check_order TRACE TARGET WHAT [resized]: the rules above, for TARGET and
# the index beside it; "resized": the run must have resized the target.
check_order() {
	python3 - "$1" "$2" "$(dirname "$2")/.$(basename "$2").vmsync-index" \
		"$3" "${4:-}" <<'EOF'
import os, re, sys

trace, T, I, what, resized = sys.argv[1:]
TD, ID = os.path.dirname(T), os.path.dirname(I)
WRITES = {"pwrite64", "pwritev", "pwritev2", "write", "writev"}
CHANGES = WRITES | {"ftruncate", "fallocate"}
SYNCS = {"fdatasync", "fsync"}
bad = []

def unhex(s):
    return bytes(int(h, 16) for h in re.findall(r"\\x([0-9a-f]{2})", s))

# One event per call: the line it started on and the line it completed on
# (a call another thread interrupted is "<unfinished ...>", then
# "<... NAME resumed>").  "A before B" is A.end < B.start.
events, pending, nlines = [], {}, 0
for n, line in enumerate(open(trace)):
    nlines = n + 1
    line = line.rstrip("\n")
    m = re.match(r"(\d+) +<\.\.\. (\w+) resumed>(.*)$", line)
    if m:
        e = pending.pop((m[1], m[2]), None)
        if e:
            e["end"] = n
            e["ok"] = not re.search(r"\) = -1 ", m[3])
        continue
    m = re.match(r"(\d+) +(\w+)\((\d+)<((?:\\x[0-9a-f]{2})*)>(.*)$", line)
    if not m or m[2] not in CHANGES | SYNCS:
        continue
    e = {"call": m[2], "path": unhex(m[4]).decode(errors="replace"),
         "start": n, "end": n, "ok": True, "off": None, "dirty": None}
    rest = m[5]
    if e["call"] == "pwrite64":
        o = re.search(r", (\d+), (\d+)(?:\) = | <unfinished)", rest)
        b = re.search(r'"((?:\\x[0-9a-f]{2})*)"', rest)
        if not o or not b:
            bad.append("cannot parse: " + line[:200])
            continue
        e["off"] = int(o[2])
        buf = unhex(b[1])
        if e["off"] == 0 and len(buf) > 20:
            e["dirty"] = bool(buf[20] & 1)	# flags, u32 at offset 20
    if rest.endswith("<unfinished ...>"):
        e["end"] = None
        pending[(m[1], e["call"])] = e
    else:
        e["ok"] = not re.search(r"\) = -1 ", rest)
    events.append(e)
for e in events:
    if e["end"] is None:
        e["end"] = e["start"]
        e["ok"] = False		# never completed in the trace

def on(path, calls):
    return [e for e in events if e["path"] == path and e["call"] in calls]

tchg = on(T, CHANGES)
tsync = [e for e in on(T, SYNCS) if e["ok"]]
tdsync = [e for e in on(TD, SYNCS) if e["ok"]]
ichg = on(I, CHANGES)
isync = [e for e in on(I, SYNCS) if e["ok"]]
idsync = [e for e in on(ID, SYNCS) if e["ok"]]
hdr = [e for e in ichg if e["call"] == "pwrite64" and e["off"] == 0]
ent = [e for e in ichg if e not in hdr]
for e in ichg:
    if e["call"] in WRITES and e["call"] != "pwrite64":
        bad.append("index written by %s, whose offset is not checked"
                   % e["call"])
    if e["call"] == "pwrite64" and 0 < e["off"] < 4096:
        bad.append("index header written in part, at %d" % e["off"])

def sync_between(syncs, after, before):
    """A sync that starts after line @after and completes before @before."""
    return any(s["start"] > after and s["end"] < before for s in syncs)

if resized and not [e for e in tchg if e["call"] == "ftruncate"]:
    bad.append("the target was not resized")
if not tchg or not ent or len(hdr) < 2:
    bad.append("vacuous run: %d target changes, %d entry writes, %d "
               "header writes" % (len(tchg), len(ent), len(hdr)))
else:
    first, last = hdr[0], hdr[-1]
    # 1. Durably dirty before anything else changes.
    if min(e["start"] for e in ichg) != first["start"] or not first["dirty"]:
        bad.append("the first change to the index is not a dirty header")
    early = [e for e in tchg if e["start"] < first["start"]]
    if any(e["call"] != "ftruncate" for e in early):
        bad.append("the target changes before the dirty header")
    if len(early) > 1:
        bad.append("the target is resized %d times before the dirty "
                   "header" % len(early))
    late = [e for e in tchg if e not in early]
    nxt = min(e["start"] for e in late + ent + hdr[1:])
    if not sync_between(isync, first["end"], nxt):
        bad.append("no fdatasync of the index between the dirty header "
                   "(line %d) and the next change (line %d)"
                   % (first["start"] + 1, nxt + 1))
    # 2. Never clean before the end; entries after their data.
    if any(not h["dirty"] for h in hdr[:-1]):
        bad.append("a clean header was written before the last one")
    for e in ent:
        done = [c["end"] for c in late if c["end"] < e["start"]]
        if done and not sync_between(tsync, max(done), e["start"]):
            bad.append("index written at line %d before the target's "
                       "change at line %d is durable"
                       % (e["start"] + 1, max(done) + 1))
            break
    # 3. The clean header is last, after data, name and entries.
    if last["dirty"]:
        bad.append("the last header written is dirty")
    if max(e["end"] for e in ichg if e is not last) > last["start"]:
        bad.append("the index changes after its clean header")
    t_last = max(e["end"] for e in tchg)
    if not sync_between(tsync, t_last, last["start"]):
        bad.append("the target is not synced between its last change "
                   "(line %d) and the clean header (line %d)"
                   % (t_last + 1, last["start"] + 1))
    if not sync_between(tdsync, first["end"], last["start"]):
        bad.append("the target's directory is not synced before the "
                   "clean header")
    e_last = max(e["end"] for e in ent)
    if not sync_between(isync, e_last, last["start"]):
        bad.append("the index is not synced between its last entry "
                   "write (line %d) and the clean header (line %d)"
                   % (e_last + 1, last["start"] + 1))
    # 4. The commit point and the index's name durable.
    if not sync_between(isync, last["end"], nlines):
        bad.append("no fdatasync of the index after its clean header")
    if not sync_between(idsync, last["end"], nlines):
        bad.append("no fsync of the index's directory after its clean "
                   "header")
    # 5. The data stays what the clean index describes.
    if any(e["start"] > last["start"] for e in tchg):
        bad.append("the target changes after the clean header")
for b in bad:
    print("%s: %s" % (what, b), file=sys.stderr)
print("%s: %d target changes, %d entry writes, %d headers, %d target "
      "syncs: %s" % (what, len(tchg), len(ent), len(hdr), len(tsync),
                     "bad" if bad else "in order"))
sys.exit(1 if bad else 0)
EOF
}

index_of() {	# the "index" of the run whose trace is $1
	STATS=$(cat "$1.json")
	stat_of index
}

# Local, trusted index: a changed MiB and a punched one.
"$HOLES" fill "$src" 1M:1M:7
fallocate -p -o $((20 * M)) -l $M "$src"
trace "$TMP/t1" "$VMSYNC" --json --no-progress "$src" "$TMP/local/"
same "$src" "$tgt"
[ "$(index_of "$TMP/t1")" = trusted ] || fail "local: index $(index_of "$TMP/t1")"
check_order "$TMP/t1" "$tgt" "local" || fail "local: wrong write order"

# Local, the source grown: the target is resized too.
truncate -s 65M "$src"
"$HOLES" fill "$src" 64M:64K:9
trace "$TMP/t2" "$VMSYNC" --json --no-progress "$src" "$TMP/local/"
same "$src" "$tgt"
check_order "$TMP/t2" "$tgt" "local, grown" resized ||
	fail "local, grown: wrong write order"

# A push: the server writes, traced as strace's child.
"$HOLES" fill "$src" 3M:256K:5
trace "$TMP/t3" "$VMSYNC" -e "$LOCALSH" --remote-vmsync "$VMSYNC" --json \
	--no-progress "$src" "host:$TMP/push/"
same "$src" "$ptgt"
[ "$(index_of "$TMP/t3")" = trusted ] || fail "push: index $(index_of "$TMP/t3")"
check_order "$TMP/t3" "$ptgt" "push" || fail "push: wrong write order"

# A push onto an index the server cannot trust (the target's times
# changed): it stores the target's hashes as entries while dirty.
touch -d 2001-01-01 "$ptgt"
"$HOLES" fill "$src" 5M:64K:6
trace "$TMP/t4" "$VMSYNC" -e "$LOCALSH" --remote-vmsync "$VMSYNC" --json \
	--no-progress "$src" "host:$TMP/push/"
same "$src" "$ptgt"
[ "$(index_of "$TMP/t4")" = rebuilt ] || fail "push, rebuilt: index $(index_of "$TMP/t4")"
check_order "$TMP/t4" "$ptgt" "push, rebuilt" || fail "push, rebuilt: wrong write order"

# Many scattered changes (every other 4 KiB block of 32 MiB): more
# entries than a run holds back, so they are written during the run, each
# batch after an fdatasync of the target.
mkdir "$TMP/small"
vs -q --block-size=4K "$src" "$TMP/small/"
stgt=$(realpath "$TMP/small")/disk.img
python3 - "$src" <<'EOF'
import sys
with open(sys.argv[1], "r+b") as f:
    for b in range(0, 32 << 20, 8192):
        f.seek(b)
        f.write(b"\x5a" * 4096)
EOF
trace "$TMP/t5" "$VMSYNC" --json --no-progress "$src" "$TMP/small/"
same "$src" "$stgt"
check_order "$TMP/t5" "$stgt" "local, scattered" > "$TMP/t5.out" ||
	fail "local, scattered: wrong write order"
cat "$TMP/t5.out"
syncs=$(sed -n 's/.*headers, \([0-9]*\) target syncs.*/\1/p' "$TMP/t5.out")
[ "${syncs:-0}" -ge 2 ] ||
	fail "local, scattered: $syncs target syncs, want entries written mid-run"
