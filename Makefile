# sluice — build, test, run, bench, asan, fuzz.
#
#   make          build ./sluice
#   make run      install what is missing, start a throwaway PostgreSQL and
#                 Redis, run sluice in front of them (foreground)
#   make test     install what is missing, unit tests, then integration tests
#   make asan     the same tests with AddressSanitizer and UBSan
#   make fuzz     libFuzzer on the protocol framing and startup parser
#   make bench    sluice beside PgBouncer and a direct connection: throughput,
#                 CPU, memory (BENCH_ONLY=tps or BENCH_ONLY=memory for one part)
#   make lint     cppcheck and clang-tidy (.clang-tidy) over every C source
#   make drivers  drivers' own test suites (npm tarballs) directly and through
#                 sluice in both pool modes; needs the npm registry

CC      ?= cc
BUILD   ?= build
OPT     ?= -O2 -g
CFLAGS  ?=
CFLAGS  += -std=c11 -D_GNU_SOURCE $(OPT) -Wall -Wextra -Werror -Wshadow \
	   -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes -I. \
	   -I/usr/include/postgresql
# only what the code uses: libunistring gives SASLprep its NFKC
# normalization (protocol/saslprep.c); hiredis is the cache's Redis client
# (cache/cache.c); libpq its LISTEN connections for invalidation = notify
# (cache/notify.c) and the check of their connection strings.
LIBS    := -lev -lcares -linih -lxxhash -lpg_query -ljson-c -lunistring -lhiredis -lpq -lssl \
	   -lcrypto -lm
SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

MODULES := protocol conf stats pool cache proxy
LIB_SRC := $(filter-out proxy/main.c,$(foreach m,$(MODULES),$(wildcard $(m)/*.c)))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
MAIN_OBJ := $(BUILD)/proxy/main.o
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
HDRS    := $(wildcard */*.h)

.PHONY: all deps run test unit integration asan fuzz bench pgregress clean format format-check lint \
	drivers

all: sluice

sluice: $(BUILD)/sluice
	@cp $< $@.tmp && mv -f $@.tmp $@

$(BUILD)/sluice: $(MAIN_OBJ) $(BUILD)/libsluice.a
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/libsluice.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

# Libraries one unit test needs beyond the program's: test_sqlscan checks
# the scanner against libpg_query's pg_query_normalize.
TEST_LIBS :=
$(BUILD)/tests/test_sqlscan: TEST_LIBS := -lpg_query

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libsluice.a $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Wno-missing-prototypes -o $@ $< $(BUILD)/libsluice.a -lcriterion \
		$(TEST_LIBS) $(LIBS)

deps:
	@scripts/deps.sh

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t --jobs 2; done

integration: sluice
	@/usr/bin/python3 tests/integration/run.py --sluice ./sluice

test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory integration

run: deps
	@$(MAKE) --no-print-directory all
	@scripts/run.sh

asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan OPT="-O1 -g $(SAN)" \
		LIBS="$(LIBS) $(SAN)" unit
	@$(MAKE) --no-print-directory BUILD=build-asan OPT="-O1 -g $(SAN)" \
		LIBS="$(LIBS) $(SAN)" build-asan/sluice
	@ASAN_OPTIONS=detect_leaks=1 /usr/bin/python3 tests/integration/run.py --sluice build-asan/sluice

# Every tests/fuzz/fuzz_*.c that includes no project header outside
# protocol/ is built from the protocol sources alone and run by `make fuzz`,
# each for FUZZ_SECONDS, from its seeds in tests/fuzz/corpus/<target>/.
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_PURE_SRC := $(shell grep -L '^\#include "\(proxy\|pool\|cache\|stats\|conf\)/' \
	/dev/null $(FUZZ_SRC))
FUZZ_PURE_SRC := $(filter-out /dev/null,$(FUZZ_PURE_SRC))
FUZZ_BIN := $(FUZZ_PURE_SRC:tests/fuzz/%.c=build-fuzz/%)
FUZZ_SECONDS ?= 30
FUZZ_CC ?= clang
FUZZ_FLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -I. -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=all
PROTO_SRC := $(filter protocol/%,$(LIB_SRC))

$(FUZZ_BIN): build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(PROTO_SRC) $(HDRS)
	@mkdir -p build-fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(PROTO_SRC) -lxxhash -lunistring -lssl -lcrypto

# Fuzz targets of the cache's pure parts (the entry decoder: Redis values
# are untrusted), built from those sources alone.
FUZZ_CACHE_BIN := build-fuzz/fuzz_cache_entry
$(FUZZ_CACHE_BIN): build-fuzz/%: tests/fuzz/%.c cache/entry.c $(HDRS)
	@mkdir -p build-fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< cache/entry.c

# The DO-block reader of stats/ (it reads every DO text a client sends),
# built from its one source.
FUZZ_STATS_BIN := build-fuzz/fuzz_code_session
$(FUZZ_STATS_BIN): build-fuzz/%: tests/fuzz/%.c stats/code_session.c $(HDRS)
	@mkdir -p build-fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< stats/code_session.c

# Fuzz targets that drive the whole proxy (fuzz_client: the client state
# machine against a scripted server) link every library source, built
# apart by clang with the fuzzer's coverage instrumentation.
FUZZ_PROXY_BIN := build-fuzz/fuzz_client
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

.PHONY: fuzz-lib
fuzz-lib:
	@$(MAKE) --no-print-directory CC=clang BUILD=build-fuzz/lib \
		OPT="-O1 -g -fsanitize=fuzzer-no-link $(FUZZ_SAN)" build-fuzz/lib/libsluice.a

$(FUZZ_PROXY_BIN): build-fuzz/%: tests/fuzz/%.c proxy/main.c fuzz-lib $(HDRS)
	clang -std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Werror -Wshadow -I. \
		-I/usr/include/postgresql -fsanitize=fuzzer $(FUZZ_SAN) \
		-o $@ $< build-fuzz/lib/libsluice.a $(LIBS)

# A crash stops the loop with libFuzzer's exit status, its input saved in
# build-fuzz/ (crash-*), to replay with build-fuzz/<target> <file>.
fuzz: deps $(FUZZ_BIN) $(FUZZ_CACHE_BIN) $(FUZZ_STATS_BIN) $(FUZZ_PROXY_BIN)
	@set -e; for f in $(FUZZ_BIN) $(FUZZ_CACHE_BIN) $(FUZZ_STATS_BIN) $(FUZZ_PROXY_BIN); do \
		n=$$(basename $$f); mkdir -p build-fuzz/corpus-$$n tests/fuzz/corpus/$$n; \
		echo "== $$n ($(FUZZ_SECONDS)s)"; \
		$$f -max_total_time=$(FUZZ_SECONDS) -timeout=10 -artifact_prefix=build-fuzz/$$n- \
			-print_final_stats=1 build-fuzz/corpus-$$n tests/fuzz/corpus/$$n; \
	done

# PostgreSQL's own regression and isolation suites, straight and through
# sluice in both pool modes (fetches PostgreSQL's source from Debian)
pgregress: deps
	@$(MAKE) --no-print-directory all
	@tree=$$(scripts/pgsrc.sh build/pgsrc) && \
		/usr/bin/python3 tests/pgregress/run.py --sluice ./sluice --pgsrc $$tree --out build/pgregress

# Not part of `make test`: the suites come from the npm registry (npm ci).
drivers: deps
	@$(MAKE) --no-print-directory all
	@/usr/bin/python3 tests/drivers/run_suites.py --sluice ./sluice

bench: deps
	@$(MAKE) --no-print-directory all
	@bench/run.sh

format:
	clang-format -i $(wildcard */*.c */*.h tests/*/*.c)

format-check:
	clang-format --dry-run --Werror $(wildcard */*.c */*.h tests/*/*.c)

# The same -D/-I as the build. cppcheck is given uthash.h (a system header
# it would otherwise skip) so that it sees the HASH_* macros as the compiler
# does, not as unknown calls on uninitialised structs. clang-tidy runs one
# process per file, in parallel; any finding fails the target.
# The fuzz harnesses are left out: fuzz_client includes proxy/main.c on
# purpose and defines the sanitizer's hook, both of which lint rightly flags.
LINT_SRC   := $(wildcard */*.c tests/unit/*.c)
LINT_FLAGS := -std=c11 -D_GNU_SOURCE -I. -I/usr/include/postgresql
LINT_JOBS  ?= $(shell nproc 2>/dev/null || echo 2)

lint: deps
	@rc=0; echo "cppcheck on $(words $(LINT_SRC)) files"; \
	cppcheck --enable=warning,performance,portability --error-exitcode=1 --inline-suppr \
		--quiet --std=c11 -D_GNU_SOURCE -I. -I/usr/include/postgresql \
		--include=/usr/include/uthash.h $(LINT_SRC) || rc=1; \
	echo "clang-tidy on $(words $(LINT_SRC)) files"; \
	printf '%s\n' $(LINT_SRC) | xargs -P $(LINT_JOBS) -I{} \
		clang-tidy --quiet {} -- $(LINT_FLAGS) || rc=1; \
	exit $$rc

clean:
	rm -rf build build-asan build-fuzz sluice
