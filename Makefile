# vmsync - Makefile
#
# Targets:
#   all         build $(BUILD)/vmsync (default)
#   check       build, then run every test: check-unit + check-sh
#   check-unit  cmocka unit tests (tests/unit/test-*.c)
#   check-sh    integration tests (tests/sh/NNN-*.sh; root, loop devices, btrfs)
#   demo        sync a generated 1 GiB sparse image twice into ./demo-backup/
#   bench       compare vmsync with rsync, qemu-img, nbdcopy, cp and btrfs
#               send on a guest's days (root); tables in tests/bench/results/
#   deps        install the Debian build and test packages that are missing
#   mutants     apply small deliberate bugs to a scratch copy and check that
#               the tests named with each fail (tests/mutants.sh; root)
#   fuzz        build the protocol fuzzer with clang/libFuzzer and run it
#               for FUZZ_SECONDS (default 60), corpus in build/fuzz/corpus;
#               FUZZ_TARGET=fuzz-archive fuzzes the archive reader instead
#               (corpus in build/fuzz/corpus-fuzz-archive, seeded from
#               tests/fuzz/archive-seeds/)
#   install     install the binary, man page, vmsync-run and the systemd
#               units, the snapper plugin and wrapper, an example config
#               (never over an existing one) and the docs; writes a
#               manifest (build-aux/install.sh)
#   uninstall   remove what the manifest lists (same directories as install)
#   deb         build the Debian package into $(DEBDIR) (default build/deb/)
#               from a copy of the tree (debian/, dpkg-buildpackage)
#   clean       remove build outputs
#
# Knobs:
#   V=1         show full commands
#   SANITIZE=1  build and test with AddressSanitizer + UBSan (in build/san)
#   TEST=GLOB   run only the tests whose file name matches GLOB
#   PREFIX=/usr/local DESTDIR=  and BINDIR, LIBEXECDIR (vmsync-run goes in
#               LIBEXECDIR/vmsync), MANDIR, SYSTEMDUNITDIR, SYSCONFDIR (/etc),
#               DOCDIR, SNAPPERPLUGINDIR (/usr/lib/snapper/plugins: the only
#               place snapper looks)

PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man
LIBEXECDIR ?= $(PREFIX)/lib
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= /etc
DOCDIR  ?= $(PREFIX)/share/doc/vmsync
SNAPPERPLUGINDIR ?= /usr/lib/snapper/plugins
DEBDIR  ?= $(BUILD)/deb
CC      ?= cc
PKG_CONFIG ?= pkg-config

ifeq ($(SANITIZE),1)
BUILD   ?= build/san
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer \
	   -fno-sanitize-recover=undefined
else
BUILD   ?= build
SANFLAGS =
endif

ifeq ($(V),1)
Q =
else
Q = @
endif

# libnbd and libarchive are loaded when needed (src/formats/nbd_lib.h,
# src/archive_lib.c): their headers only.
PKGS      = popt libxxhash zlib libzstd
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) libarchive libnbd 2>/dev/null)
PKG_LIBS   := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null || echo -lpopt -lxxhash -lz -lzstd) -lbtrfsutil -ldl
CMOCKA_LIBS := $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null || echo -lcmocka)
ZSTD_LIBS  := $(shell $(PKG_CONFIG) --libs libzstd 2>/dev/null || echo -lzstd)

CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE \
	   -D_FILE_OFFSET_BITS=64 $(SANFLAGS) $(PKG_CFLAGS) -MMD -MP
LDFLAGS += $(SANFLAGS) -pthread

LIB_SRCS = \
	src/err.c \
	src/util.c \
	src/hash.c \
	src/index.c \
	src/cli.c \
	src/engine.c \
	src/reader.c \
	src/confine.c \
	src/server.c \
	src/client.c \
	src/source.c \
	src/view.c \
	src/btrfs.c \
	src/physmap.c \
	src/changes.c \
	src/snapshot.c \
	src/verify.c \
	src/list.c \
	src/progress.c \
	src/archive.c \
	src/archive_lib.c \
	src/archive_fetch.c \
	src/archive_zstd.c \
	src/delta.c \
	src/delta_base.c \
	src/delta_text.c \
	src/delta_export.c \
	src/import.c \
	src/formats/io.c \
	src/formats/format.c \
	src/formats/choose.c \
	src/formats/raw.c \
	src/formats/decompress.c \
	src/formats/qcow2_open.c \
	src/formats/qcow2.c \
	src/formats/qcow2_live.c \
	src/formats/fileview.c \
	src/formats/refs.c \
	src/formats/nbd.c \
	src/formats/nbd_lib.c \
	src/formats/vmdk.c \
	src/formats/tar.c \
	src/transport/local.c \
	src/transport/zero.c \
	src/transport/sectors.c \
	src/transport/advisor.c \
	src/transport/wire.c \
	src/transport/proto.c \
	src/transport/wirecomp.c \
	src/transport/wirepool.c \
	src/transport/wireadapt.c \
	src/transport/remote.c \
	src/transport/serve.c \
	src/transport/ssh.c

MAIN_SRCS = src/main.c
UNIT_SRCS = $(wildcard tests/unit/test-*.c)
HELPER_SRCS = tests/helpers/holes.c tests/helpers/idxforge.c
BENCH_SRCS = $(wildcard tests/bench/*.c)

LIB_OBJS  = $(LIB_SRCS:%.c=$(BUILD)/%.o)
MAIN_OBJS = $(MAIN_SRCS:%.c=$(BUILD)/%.o)
UNIT_BINS = $(UNIT_SRCS:%.c=$(BUILD)/%) $(BUILD)/tests/unit/test-err-tsan \
	$(BUILD)/tests/unit/test-archive-zstd-tsan
HELPER_BINS = $(HELPER_SRCS:%.c=$(BUILD)/%) \
	$(BUILD)/tests/helpers/failfsync.so
BENCH_BINS = $(BENCH_SRCS:%.c=$(BUILD)/%)

.PHONY: all check check-unit check-sh demo bench deps install uninstall \
	clean fuzz mutants deb

all: $(BUILD)/vmsync

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/libvmsync.a: $(LIB_OBJS)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/vmsync: $(MAIN_OBJS) $(BUILD)/libvmsync.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/tests/unit/%: tests/unit/%.c $(BUILD)/libvmsync.a
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -Isrc -o $@ $< $(BUILD)/libvmsync.a \
		$(CMOCKA_LIBS) $(PKG_LIBS) $(LDFLAGS)

$(BUILD)/tests/helpers/%: tests/helpers/%.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(LDFLAGS)

# The engine's tests share a memory target.
$(BUILD)/tests/unit/test-engine: tests/unit/memtarget.h

# The error state again, with ThreadSanitizer (which cannot be combined
# with SANITIZE=1's AddressSanitizer): reader threads report errors.
$(BUILD)/tests/unit/test-err-tsan: tests/unit/test-err.c src/err.c \
		src/vmsync.h
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) -std=gnu11 -O1 -g -Wall -Wextra -Werror -D_GNU_SOURCE \
		-fsanitize=thread -Isrc -o $@ tests/unit/test-err.c src/err.c \
		$(CMOCKA_LIBS) -pthread

# A .tar.zst's compressor again, with ThreadSanitizer: its workers and
# the thread that writes its frames share the pieces in flight.
$(BUILD)/tests/unit/test-archive-zstd-tsan: tests/unit/test-archive-zstd.c \
		src/archive_zstd.c src/util.c src/err.c src/archive_zstd.h \
		src/util.h src/vmsync.h
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) -std=gnu11 -O1 -g -Wall -Wextra -Werror -D_GNU_SOURCE \
		-fsanitize=thread -Isrc -o $@ $(filter %.c,$^) \
		$(CMOCKA_LIBS) $(ZSTD_LIBS) -pthread

# An LD_PRELOAD shim that fails a directory's fsync(); built without the
# sanitizers, which would have their runtime loaded before it.
$(BUILD)/tests/helpers/failfsync.so: tests/helpers/failfsync.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) -std=gnu11 -O1 -Wall -Wextra -Werror -D_GNU_SOURCE -shared \
		-fPIC -o $@ $< -ldl

# This helper forges index headers with the index code's own layout.
$(BUILD)/tests/helpers/idxforge: tests/helpers/idxforge.c $(BUILD)/libvmsync.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -Isrc -o $@ $< $(BUILD)/libvmsync.a $(PKG_LIBS) \
		$(LDFLAGS)

# The protocol fuzzer's harness, with a plain main() that replays inputs:
# make check compiles it so it cannot rot between runs of make fuzz.
$(BUILD)/tests/fuzz/fuzz-proto: tests/fuzz/fuzz-proto.c tests/fuzz/replay.c \
		$(BUILD)/libvmsync.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -Isrc -o $@ tests/fuzz/fuzz-proto.c \
		tests/fuzz/replay.c $(BUILD)/libvmsync.a $(PKG_LIBS) $(LDFLAGS)

$(BUILD)/tests/fuzz/fuzz-archive: tests/fuzz/fuzz-archive.c \
		tests/fuzz/replay.c $(BUILD)/libvmsync.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -Isrc -o $@ tests/fuzz/fuzz-archive.c \
		tests/fuzz/replay.c $(BUILD)/libvmsync.a $(PKG_LIBS) $(LDFLAGS)

$(BUILD)/tests/bench/%: tests/bench/%.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(LDFLAGS) -lm

deps:
	@sh tests/deps.sh

check: deps
	$(Q)$(MAKE) --no-print-directory all-tests
	$(Q)BUILD=$(BUILD) TEST='$(TEST)' sh tests/run.sh

check-unit: all-tests
	$(Q)BUILD=$(BUILD) TEST='$(TEST)' ONLY=unit sh tests/run.sh

check-sh: all-tests
	$(Q)BUILD=$(BUILD) TEST='$(TEST)' ONLY=sh sh tests/run.sh

.PHONY: all-tests
all-tests: $(BUILD)/vmsync $(UNIT_BINS) $(HELPER_BINS) \
	$(BUILD)/tests/fuzz/fuzz-proto $(BUILD)/tests/fuzz/fuzz-archive

demo: deps
	$(Q)$(MAKE) --no-print-directory all-tests
	$(Q)BUILD=$(BUILD) sh tests/demo.sh

# The benchmark's own tools come on top of the test packages.  Knobs are
# described in tests/bench/run.sh (BENCH_SIZE, BENCH_SCALES, ...).
bench: deps
	$(Q)sh tests/deps.sh rsync libnbd-bin
	$(Q)$(MAKE) --no-print-directory all-tests $(BENCH_BINS)
	$(Q)BUILD=$(BUILD) bash tests/bench/run.sh

mutants: deps
	$(Q)bash tests/mutants.sh

INSTALL_ENV = DESTDIR='$(DESTDIR)' BINDIR='$(BINDIR)' \
	LIBEXECDIR='$(LIBEXECDIR)' MANDIR='$(MANDIR)' \
	SYSTEMDUNITDIR='$(SYSTEMDUNITDIR)' SYSCONFDIR='$(SYSCONFDIR)' \
	DOCDIR='$(DOCDIR)' SNAPPERPLUGINDIR='$(SNAPPERPLUGINDIR)'

install: $(BUILD)/vmsync
	$(Q)$(INSTALL_ENV) VMSYNC_BIN='$(abspath $(BUILD)/vmsync)' \
		sh build-aux/install.sh install

uninstall:
	$(Q)$(INSTALL_ENV) sh build-aux/install.sh uninstall

# The package is built from a copy of the tree in $(DEBDIR)/src, so the
# tree stays clean; the .deb lands in $(DEBDIR).  No make variable of this
# run reaches debian/rules (MAKEFLAGS is dropped).
DEB_BUILD_OPTIONS ?= nocheck parallel=$(shell nproc 2>/dev/null || echo 1)
deb: deps
	$(Q)rm -rf '$(DEBDIR)/src' '$(DEBDIR)'/vmsync*_* && \
		mkdir -p '$(DEBDIR)/src'
	$(Q)tar -c --exclude=./.git --exclude=./build --exclude=./demo-backup \
		--exclude=./demo-work --exclude=./tests/bench/work . | \
		tar -x -C '$(DEBDIR)/src'
	$(Q)cd '$(DEBDIR)/src' && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
		-u BUILD -u SANITIZE DEB_BUILD_OPTIONS='$(DEB_BUILD_OPTIONS)' \
		dpkg-buildpackage -us -uc -b
	$(Q)rm -rf '$(DEBDIR)/src'
	@ls '$(DEBDIR)'/*.deb

clean:
	rm -rf build

-include $(LIB_OBJS:.o=.d) $(MAIN_OBJS:.o=.d)

# A fuzzer (FUZZ_TARGET: fuzz-proto, the protocol; fuzz-archive, the
# archive reader): every library source built with clang and
# -fsanitize=fuzzer,address,undefined into one binary.
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZ_TARGET ?= fuzz-proto
FUZZ_CORPUS ?= build/fuzz/corpus$(if $(filter fuzz-proto,$(FUZZ_TARGET)),,-$(FUZZ_TARGET))
FUZZ_SEEDS = $(if $(filter fuzz-archive,$(FUZZ_TARGET)),tests/fuzz/archive-seeds)
fuzz: deps
	$(Q)sh tests/deps.sh clang libclang-rt-14-dev
	$(Q)mkdir -p $(FUZZ_CORPUS)
	$(Q)$(FUZZ_CC) -g -O1 -std=gnu11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 \
		-fsanitize=fuzzer,address,undefined -iquote src $(PKG_CFLAGS) \
		-pthread -o build/fuzz/$(FUZZ_TARGET) \
		tests/fuzz/$(FUZZ_TARGET).c $(LIB_SRCS) $(PKG_LIBS)
	$(Q)build/fuzz/$(FUZZ_TARGET) -max_total_time=$(FUZZ_SECONDS) \
		-print_final_stats=1 $(FUZZ_CORPUS) $(FUZZ_SEEDS)
