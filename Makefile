# berth: one binary. `make` builds ./berth, `make test` runs every test,
# `make asan` runs the tests under ASan/UBSan, `make fuzz` runs the fuzzers briefly.
CC      ?= cc
PKGS    := libuv sqlite3 jansson yaml-0.1 libsodium libarchive libcurl
LLHTTP_SRC ?= /usr/share/llhttp
LLHTTP_INC ?= /usr/share/include/llhttp
BUILD   ?= build
OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
WARN    := -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow -Wformat=2 -Wno-unknown-warning-option -Wno-format-truncation
CPPFLAGS += -std=c11 -D_GNU_SOURCE -Isrc -I$(LLHTTP_INC) $(shell pkg-config --cflags $(PKGS))
LDLIBS  += $(shell pkg-config --libs $(PKGS)) -lpthread -lm
SAN     ?=

SRCS    := $(filter-out src/main.c, $(wildcard src/*/*.c))
OBJS    := $(SRCS:%.c=$(BUILD)/%.o)
LLOBJS  := $(BUILD)/llhttp/llhttp.o $(BUILD)/llhttp/api.o $(BUILD)/llhttp/http.o
LIB     := $(BUILD)/libberth.a
UNIT    := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))
BIN     ?= berth

all: $(BIN)

$(BIN): $(BUILD)/src/main.o $(LIB)
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(LDLIBS)

$(LIB): $(OBJS) $(LLOBJS)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(SAN) $(WARN) -MMD -MP -c -o $@ $<

# llhttp is Node's parser, compiled from Debian's node-llhttp sources (strict mode, no lenient flags).
$(BUILD)/llhttp/%.o: $(LLHTTP_SRC)/%.c
	@mkdir -p $(dir $@)
	$(CC) -I$(LLHTTP_INC) -DLLHTTP_STRICT_MODE=1 $(CFLAGS) $(SAN) -w -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(SAN) $(WARN) -o $@ $< $(LIB) $(LDLIBS) -lcmocka

unit-build: $(UNIT)

unit: $(UNIT)
	@set -e; for t in $(UNIT); do echo "== $$t"; $$t; done

integration: $(BIN)
	BERTH_BIN=$(abspath $(BIN)) SUITE=$(SUITE) tests/integration/run.sh

# The whole suite: unit tests, then integration tests against a real server and the same
# under ASan/UBSan side by side (most of a test's time is waiting on servers, podman and
# builds; each test has its own data dir, ports and engine), then the fuzzers for a short
# bounded time.
test:
	$(MAKE) unit
	$(MAKE) -j2 integration asan
	$(MAKE) fuzz

asan:
	$(MAKE) SUITE=asan BUILD=build-asan BIN=build-asan/berth OPT=-O1 \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  unit integration

FUZZERS := $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
fuzz:
	$(MAKE) CC=clang BUILD=build-fuzz OPT=-O1 SAN="-fsanitize=fuzzer-no-link,address,undefined" build-fuzz/libberth.a
	@set -e; for f in $(FUZZERS); do \
	  clang $(CPPFLAGS) -O1 -g -fsanitize=fuzzer,address,undefined -o build-fuzz/fuzz_$$f fuzz/fuzz_$$f.c build-fuzz/libberth.a $(LDLIBS); \
	  mkdir -p build-fuzz/corpus-$$f; \
	  build-fuzz/fuzz_$$f -max_total_time=$${FUZZ_SECONDS:-20} -max_len=65536 build-fuzz/corpus-$$f fuzz/corpus/$$f; \
	done

bench: $(BIN)
	bench/run.sh

clean:
	rm -rf build build-asan build-fuzz $(BIN)

.PHONY: all unit unit-build integration test asan fuzz bench clean
-include $(OBJS:.o=.d) $(BUILD)/src/main.d
