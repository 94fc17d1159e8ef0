# liblogcaster, the C client library (src/lib/), its examples, benchmark and tests.
#
#   make lib    build/rel/liblogcaster.a, build/rel/liblogcaster.so.1 (soname liblogcaster.so.1),
#               build/rel/examples/hello (linked to the .so) and build/rel/lc_bench
#
# The library depends on libc and pthreads only. Everything but the API in logcaster.h is
# hidden (-fvisibility=hidden). `make test` builds the ASan+UBSan test programs in
# build/asan/tests/lib/ (through TEST_EXTRA); tests/integration/test_lib.py runs them.

LC_SRCS   = $(wildcard src/lib/*.c)
LC_HDRS   = $(wildcard src/lib/*.h)
LC_CFLAGS = -std=gnu11 -Wall -Wextra -Werror -Wshadow -pthread -fPIC -fvisibility=hidden -Isrc/lib
LC_TFLAGS = -std=gnu11 -Wall -Wextra -Werror -Wshadow -pthread -Isrc/lib

LC_REL_OBJS  = $(patsubst src/lib/%.c,$(B)/liblc/%.o,$(LC_SRCS))
LC_ASAN_OBJS = $(patsubst src/lib/%.c,$(BA)/liblc/%.o,$(LC_SRCS))
LC_TESTS     = $(patsubst tests/lib/%.c,$(BA)/tests/lib/%,$(wildcard tests/lib/*.c))

.PHONY: lib
lib: $(B)/liblogcaster.a $(B)/liblogcaster.so.1 $(B)/examples/hello $(B)/lc_bench

$(B)/liblc/%.o: src/lib/%.c $(LC_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(LC_CFLAGS) $(OPT) -c $< -o $@
$(BA)/liblc/%.o: src/lib/%.c $(LC_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(LC_CFLAGS) $(SAN) -c $< -o $@

$(B)/liblogcaster.a: $(LC_REL_OBJS)
	rm -f $@ && ar rcs $@ $^
$(BA)/liblogcaster.a: $(LC_ASAN_OBJS)
	rm -f $@ && ar rcs $@ $^
$(B)/liblogcaster.so.1: $(LC_REL_OBJS)
	$(CC) -shared -Wl,-soname,liblogcaster.so.1 -Wl,--no-undefined -Wl,-z,defs $(OPT) $^ -o $@ \
	    -pthread

# The example uses the shared library, as an installed program would (rpath: build/rel).
$(B)/examples/hello: examples/hello.c src/lib/logcaster.h $(B)/liblogcaster.so.1
	@mkdir -p $(dir $@)
	$(CC) $(LC_TFLAGS) $(OPT) $< $(B)/liblogcaster.so.1 -Wl,-rpath,'$$ORIGIN/..' -o $@
$(B)/lc_bench: examples/lc_bench.c src/lib/logcaster.h $(B)/liblogcaster.a
	$(CC) $(LC_TFLAGS) $(OPT) $< $(B)/liblogcaster.a -o $@ -pthread

# Test programs: ASan+UBSan, linked statically (they may call the library's internals).
$(BA)/tests/lib/%: tests/lib/%.c $(LC_HDRS) $(BA)/liblogcaster.a
	@mkdir -p $(dir $@)
	$(CC) $(LC_TFLAGS) $(SAN) $< $(BA)/liblogcaster.a -o $@ -pthread

TEST_EXTRA += $(LC_TESTS) $(B)/liblogcaster.so.1 $(B)/liblogcaster.a $(B)/examples/hello \
              $(B)/lc_bench
