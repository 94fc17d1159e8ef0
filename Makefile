# LogCaster build. `make run` builds and starts the server; `make test` builds and runs every test.
CC      ?= cc
CFLAGS_BASE = -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -pthread -Isrc -Isrc/lib \
              -Itests/unit \
              $(shell pkg-config --cflags libpcre2-8 2>/dev/null)
LIBS    = $(shell pkg-config --libs libpcre2-8 2>/dev/null || echo -lpcre2-8) -lzstd -llz4 -lxxhash -lyajl -linih -lnats -lssl -lcrypto \
          -pthread -lm
OPT     ?= -O2 -g
SAN     = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

LIB_SRCS    = $(filter-out src/main.c, $(wildcard src/base/*.c src/core/*.c src/proto/*.c src/ingest/*.c src/irc/*.c \
                                                 src/store/*.c src/query/*.c src/http/*.c src/cluster/*.c)) src/http/assets.S
WEB_FILES   = web/index.html web/app.js web/app.css
CLIENT_SRCS = $(wildcard src/client/*.c)
UNIT_SRCS   = $(wildcard tests/unit/test_*.c)
FUZZ_SRCS   = $(wildcard tests/fuzz/fuzz_*.c)
HDRS        = $(filter-out src/lib/lc_internal.h, $(wildcard src/*/*.h))

B  = build/rel
BA = build/asan

.PHONY: all run test unit integration fuzz fuzz-long bench deps deps-test clean format
all: $(B)/logcasterd $(B)/logcaster

# The Debian packages, when missing (scripts/install-deps.sh says which and why):
#   deps       building and running (scripts/debian-packages.txt): `make run`, `make install`;
#   deps-test  that and what the tests and benchmarks add (scripts/debian-packages-test.txt):
#              `make bench`, `make test-syslog-ng`, the cluster tests.
# `make test` also asks for a system log daemon for the real-sender tests, which is installed
# (rsyslog) only on a machine that has none; a machine's own log daemon is never replaced.
deps:
	@scripts/install-deps.sh run
deps-test:
	@scripts/install-deps.sh test

define build_tree
$(1)/lib.a: $(patsubst %.S,$(1)/%.o,$(patsubst %.c,$(1)/%.o,$(LIB_SRCS)))
	rm -f $$@ && ar rcs $$@ $$^
$(1)/%.o: %.c $(HDRS)
	@mkdir -p $$(dir $$@)
	$(CC) $(CFLAGS_BASE) $(2) -c $$< -o $$@
$(1)/%.o: %.S $(WEB_FILES)
	@mkdir -p $$(dir $$@)
	$(CC) -c $$< -o $$@
$(1)/logcasterd: $(1)/src/main.o $(1)/lib.a
	$(CC) $(2) $$^ -o $$@ $(LIBS)
$(1)/logcaster: $(patsubst %.c,$(1)/%.o,$(CLIENT_SRCS)) $(1)/lib.a $(1)/liblogcaster.a
	$(CC) $(2) $$^ -o $$@ $(LIBS)
$(1)/tests/%: $(1)/tests/%.o $(1)/lib.a
	$(CC) $(2) $$^ -o $$@ $(LIBS)
endef
$(eval $(call build_tree,$(B),$(OPT)))
$(eval $(call build_tree,$(BA),$(SAN)))

# Optional parts (client library, install) add their own rules and their test prerequisites
# to TEST_EXTRA.
TEST_EXTRA =
include $(wildcard mk/*.mk)

# `make run` keeps its data in build/data, inside the ignored build tree, so the clone stays
# clean (and `make clean` removes it). RUN_ARGS adds server options: make run RUN_ARGS="-v".
# The packages come first, then the build (a sub-make, so `make -j` cannot start compiling
# before they are there).
RUN_ARGS ?=
run: deps
	@$(MAKE) --no-print-directory $(B)/logcasterd $(B)/logcaster
	$(B)/logcasterd --data-dir build/data $(RUN_ARGS)

# The whole suite, against the ASan+UBSan build: unit tests, integration tests over real
# sockets, and a short run of every fuzzer. Prints one summary line at the end.
test:
	@scripts/install-deps.sh test --log-daemon
	@$(MAKE) --no-print-directory $(BA)/logcasterd $(BA)/logcaster $(patsubst %.c,$(BA)/%,$(UNIT_SRCS)) \
	    $(TEST_EXTRA)
	@scripts/run-tests.sh $(BA)

unit: $(patsubst %.c,$(BA)/%,$(UNIT_SRCS))
	@for t in $^; do $$t || exit 1; done

# The library is compiled once for every fuzzer (coverage-instrumented, not linked with the
# fuzzer's main), then each target is one small compile and a link.
FUZZ_FLAGS  = -std=gnu11 -g -O1 -Isrc -Itests/unit $(shell pkg-config --cflags libpcre2-8 2>/dev/null)
FUZZ_OBJS   = $(patsubst %.S,build/fuzz/obj/%.o,$(patsubst %.c,build/fuzz/obj/%.o,$(LIB_SRCS)))
build/fuzz/obj/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link,address,undefined -c $< -o $@
build/fuzz/obj/%.o: %.S $(WEB_FILES)
	@mkdir -p $(dir $@)
	clang -c $< -o $@
build/fuzz/lib.a: $(FUZZ_OBJS)
	rm -f $@ && ar rcs $@ $^
build/fuzz/%: tests/fuzz/%.c build/fuzz/lib.a $(HDRS) $(wildcard tests/fuzz/*.inc)
	@mkdir -p build/fuzz
	clang $(FUZZ_FLAGS) -fsanitize=fuzzer,address,undefined $< build/fuzz/lib.a -o $@ $(LIBS)
FUZZ_BINS   = $(patsubst tests/fuzz/%.c,build/fuzz/%,$(FUZZ_SRCS))
# New inputs go to build/fuzz/corpus/NAME (libFuzzer writes to its first corpus directory
# only); the seeds in tests/fuzz/corpus/ are read, never written.
fuzz: $(FUZZ_BINS)
	@for f in $^; do n=$$(basename $$f); mkdir -p build/fuzz/corpus/$$n tests/fuzz/corpus/$$n; \
	  $$f -max_total_time=$${FUZZ_SECONDS:-60} -timeout=5 build/fuzz/corpus/$$n \
	      tests/fuzz/corpus/$$n || exit 1; done

bench: deps-test
	@$(MAKE) --no-print-directory $(B)/logcasterd $(B)/logcaster $(B)/bench/nats-floor
	@bench/run.sh $(B)

# The cluster benchmark's measure of the nats-servers alone (bench/nats_floor.c).
$(B)/bench/nats-floor: bench/nats_floor.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(OPT) $< -o $@ -lnats

format:
	clang-format -i $(wildcard src/*/*.c src/*/*.h src/*.c tests/unit/*.c tests/unit/*.h tests/fuzz/*.c)

clean:
	rm -rf build
