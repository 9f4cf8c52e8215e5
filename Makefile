# Thin wrapper over Meson + Ninja. Every target installs missing Debian
# packages first (scripts/deps.sh is quiet when nothing is missing).
BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_COV  ?= build-cov
BUILD_FUZZ ?= build-fuzz
MESON      ?= meson
PREFIX     ?= /usr/local
DESTDIR    ?=

.PHONY: all deps build run test unit e2e lint bench fuzz install coverage clean format

all: build

deps:
	@scripts/deps.sh

$(BUILD)/build.ninja:
	@scripts/deps.sh
	$(MESON) setup $(BUILD) --prefix=$(PREFIX) >/dev/null

build: deps $(BUILD)/build.ninja
	@ninja -C $(BUILD)

# Runs the agent in the foreground with the embedded default configuration:
# data under ./var/, rules from ./rules/, alerts to stdout, procmond from the build.
run: build
	@mkdir -p var
	@scripts/run.sh $(BUILD)

$(BUILD_ASAN)/build.ninja:
	@scripts/deps.sh
	$(MESON) setup $(BUILD_ASAN) -Db_sanitize=address,undefined -Db_lundef=false \
		-Dbuildtype=debug -Debpf=disabled >/dev/null

# Everything: unit tests, fuzz-corpus replay, end-to-end tests, and the unit
# tests again under AddressSanitizer + UndefinedBehaviorSanitizer.
test: build $(BUILD_ASAN)/build.ninja
	@ninja -C $(BUILD_ASAN)
	@scripts/test.sh $(BUILD) $(BUILD_ASAN)

unit: build
	@$(MESON) test -C $(BUILD) --suite unit --print-errorlogs

e2e: build
	@/usr/bin/python3 -m pytest -q tests/e2e

lint: build
	@scripts/lint.sh $(BUILD)

format:
	@git ls-files '*.c' '*.h' | grep -v '^src/procmond/vmlinux' | xargs clang-format -i

bench: build
	@scripts/bench.sh $(BUILD)

$(BUILD_FUZZ)/build.ninja:
	@scripts/deps.sh
	CC=clang $(MESON) setup $(BUILD_FUZZ) -Dfuzz=true -Db_sanitize=address,undefined \
		-Db_lundef=false -Debpf=disabled >/dev/null

# Only the libFuzzer executables are built with clang; the programs are gcc's.
fuzz: $(BUILD_FUZZ)/build.ninja
	@ninja -C $(BUILD_FUZZ) $$(ninja -C $(BUILD_FUZZ) -t targets all | \
		grep -o '^fuzz/fuzz-[A-Za-z0-9_-]*' | sort -u)
	@scripts/fuzz.sh $(BUILD_FUZZ)

coverage:
	@scripts/deps.sh
	@[ -f $(BUILD_COV)/build.ninja ] || $(MESON) setup $(BUILD_COV) -Db_coverage=true \
		-Dbuildtype=debug >/dev/null
	@ninja -C $(BUILD_COV)
	@# The daemons drop to an unprivileged user; let them write their .gcda files.
	@chmod -R a+rwX $(BUILD_COV)
	@$(MESON) test -C $(BUILD_COV) --suite unit --suite fuzz >/dev/null || true
	@DE_BUILD_DIR=$(BUILD_COV) /usr/bin/python3 -m pytest -q tests/e2e >/dev/null || true
	@scripts/coverage.sh $(BUILD_COV)

install: build
	@DESTDIR=$(DESTDIR) $(MESON) install -C $(BUILD) --no-rebuild
	@scripts/install-user.sh "$(DESTDIR)"

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_COV) $(BUILD_FUZZ)
