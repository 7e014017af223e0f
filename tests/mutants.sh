#!/usr/bin/env bash
# make mutants: prove that the tests can fail.  Each mutant below is a small
# deliberate bug in a scratch copy of the tree; the tests named with it must
# fail on it.  A mutant they pass is a survivor: a bug the suite would not
# see.  Not part of make check (it rebuilds once per mutant).
#
# Environment: MUTANTS=GLOB runs only the mutants whose name matches;
# KEEP=1 keeps the scratch copy.  Ends with "N killed, M survived" and
# exits 1 if any mutant survived, didn't apply, or the tests fail unmutated.
set -u
cd "$(dirname "$0")/.."
top=$PWD
scratch=$(mktemp -d "${TMPDIR:-/tmp}/vmsync-mutants.XXXXXX")
chmod 755 "$scratch"	# some tests run the binary as another user
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$scratch"' EXIT
log=$scratch/log

# name | file | text to replace (exactly one occurrence) | replacement |
# test globs (tests/run.sh TEST patterns, space separated).  A | inside the
# texts is written \|.
mutants() {
	cat <<'EOF'
is_hole sees only the start|src/transport/local.c|return (uint64_t)data >= off + len;|(void)len;
	return (uint64_t)data > off;|test-local 025-*
dirty flag ignored|src/index.c|	if (h->flags & IDX_FLAG_DIRTY)|	if (0 && (h->flags & IDX_FLAG_DIRTY))|test-index test-local 024-*
index checksum not checked|src/index.c|if (get64(buf + csum) != vs_hash64(buf, csum)) {|if (get64(buf + csum) != vs_hash64(buf, csum) && 0) {|test-index 057-*
sectors compared by one byte|src/transport/local.c|memcmp(new + i, lt->buf + i, n) != 0;|memcmp(new + i, lt->buf + i, 1) != 0;|test-local 011-*
zeroed sectors written, not punched|src/transport/local.c|bool zero = differs && !hole && vs_is_zero(new + i, n);|bool zero = false;|test-local 012-*
changed sectors punched, not written|src/transport/local.c|bool zero = differs && !hole && vs_is_zero(new + i, n);|bool zero = differs && !hole;|test-local 011-*
remote digest taken as equal|src/engine.c|if (vs_hash_eq(&d, &s->digests[g0 / s->group])) {|if (1) {|060-* 061-*
interrupt check never stops|src/engine.c|	if (!vs_interrupted)
		return 0;
	vs_err(VS_EXIT_PARTIAL, s->src->name, "interrupted");|	return 0;
	vs_err(VS_EXIT_PARTIAL, s->src->name, "interrupted");|020-* 023-*
one reader thread|src/reader.c|#define READER_THREADS 4|#define READER_THREADS 1|test-reader
read-ahead not asked of the kernel|src/transport/advisor.c|	if (posix_fadvise(a->fd, (off_t)adv->off, (off_t)adv->len,
	    POSIX_FADV_WILLNEED) == 0 && a->log)|	if (a->log)|161-*
edge block not read again|src/engine.c|			s->keep[edge - wstart / bs] = 0;|			(void)edge;|161-*
index entries not synced before the clean header|src/index.c|	if (fdatasync(ix->fd) < 0) {
		vs_errno(VS_EXIT_TARGET, ix->path, "sync index");|	if (0) {
		vs_errno(VS_EXIT_TARGET, ix->path, "sync index");|188-*
target data not synced at commit|src/transport/local.c|	if (fdatasync(lt->fd) < 0) {|	if (0) {|188-*
index directory not synced at commit|src/transport/local.c|	if (sync_dir(lt->idx_dir_fd) < 0) {|	if (0) {|188-*
writers take no subvolume hold|src/snapshot.c|	if (fd < 0 \|\| walk_up(fd, &sfd) <= 0)
		return 0;	/* no subvolume a snapshot could take */|	if (fd >= 0)
		close(fd);
	return 0;|178-*
writers skip the gate|src/snapshot.c|	if ((g >= 0 && lock_wait(g, op) < 0) \|\| lock_wait(sfd, op) < 0) {|	if ((g >= 0 && op == LOCK_EX && lock_wait(g, op) < 0) \|\| lock_wait(sfd, op) < 0) {|178-*
sector record check ignored|src/index.c|		    get64(p) != record_check(ix->hdr.seed, first + i, &blk[i],
		    p + 8, rl - 8))|		    (get64(p) != record_check(ix->hdr.seed, first + i, &blk[i],
		    p + 8, rl - 8) && 0))|test-index 190-*
no sector records staged|src/transport/sectors.c|		s->have[i] = off % s->bs == 0 && start >= off && stop <= end;|		s->have[i] = off % s->bs == 0 && start >= off && stop <= end && 0;|190-*
EOF
}

echo "mutants: copying the tree to $scratch/tree"
mkdir "$scratch/tree"
git ls-files -co --exclude-standard -z |
	tar --null -T - -cf - | tar -C "$scratch/tree" -xf -

# Run the given test globs in the scratch tree; 0 if all pass.  A glob
# that runs no test counts as failing: it could not catch anything.
run_tests() {
	local glob rc=0 out
	for glob in "$@"; do
		out=$( cd "$scratch/tree" && VMSYNC_TEST_STRICT=1 TEST="$glob" \
			BUILD=build sh tests/run.sh 2>&1 ) || rc=1
		printf '%s\n' "$out" >> "$log"
		if printf '%s\n' "$out" | grep -q '^0 passed, 0 failed'; then
			echo "FAIL: no test matches $glob" >> "$log"
			rc=1
		fi
	done
	return $rc
}

build() {
	make -C "$scratch/tree" --no-print-directory BUILD=build all-tests \
		>> "$log" 2>&1
}

# One line per mutant, fields separated by \x1f, the newlines of a
# multi-line text to replace kept as \x1e.
records=$scratch/records
mutants | perl -0777 -ne '
	# name|file|old|new|tests, then the next record starts after the
	# newline that ends "tests"; \| is a | of the texts.
	my $s = $_;
	while ($s =~ /\G([^|\n]+)\|([^|\n]+)\|((?:\\\||[^|])*?)\|((?:\\\||[^|])*?)\|([^|\n]*)\n/gs) {
		my ($n, $f, $o, $w, $t) = ($1, $2, $3, $4, $5);
		s/\\\|/|/g for ($o, $w);
		s/\n/\x1e/g for ($o, $w);
		print join("\x1f", $n, $f, $o, $w, $t), "\n";
	}' | while IFS= read -r r; do
		case "${r%%$'\x1f'*}" in ${MUTANTS:-*}) printf '%s\n' "$r" ;; esac
	done > "$records"
[ -s "$records" ] || { echo "mutants: none matches '${MUTANTS:-*}'"; exit 1; }

# Unmutated, every named test must pass; otherwise nothing below means
# anything.
all_globs=$(cut -d $'\x1f' -f5 "$records" | tr ' ' '\n' | sort -u | tr '\n' ' ')
echo "mutants: building and running the tests unmutated"
# shellcheck disable=SC2086
if ! build || ! run_tests $all_globs; then
	tail -n 40 "$log"
	echo "mutants: the tests fail without a mutant; fix that first"
	exit 1
fi

killed=0 survived=0 broken=0 survivors=""
while IFS=$'\x1f' read -r name file old new globs; do
	src=$scratch/tree/$file
	cp "$src" "$scratch/orig"
	if ! OLD=$old NEW=$new perl -0777 -i -pe '
		BEGIN { s/\x1e/\n/g for @ENV{qw(OLD NEW)} }
		my $c = () = /\Q$ENV{OLD}\E/g;
		die "matches $c times\n" if $c != 1;
		s/\Q$ENV{OLD}\E/$ENV{NEW}/;' "$src" 2>> "$log"; then
		echo "BROKEN:   $name: the text to mutate is not in $file once"
		broken=$((broken + 1))
		continue
	fi
	: > "$log"
	if ! build; then
		echo "BROKEN:   $name: does not build"
		broken=$((broken + 1))
	elif run_tests $globs; then
		echo "SURVIVED: $name ($file; $globs all pass)"
		survived=$((survived + 1))
		survivors="$survivors; $name"
	else
		echo "killed:   $name (by$(sed -n 's/^failed:\(.*\) (logs in.*/\1/p' \
			"$log" | tr -d '\n'))"
		killed=$((killed + 1))
	fi
	cp "$scratch/orig" "$src"
	touch "$src"
done < "$records"

[ -n "$survivors" ] && echo "survivors:${survivors#;}"
echo "$killed killed, $survived survived, $broken broken"
[ "$survived" -eq 0 ] && [ "$broken" -eq 0 ]
