# Corral: `make demo` runs the classic scenarios, `make test` runs every test.
CARGO      ?= cargo
GUESTS_DIR := guests/rust
P2_OUT     := $(GUESTS_DIR)/target/wasm32-wasip2/release
# Wherever cargo puts its builds (CARGO_TARGET_DIR is a common setting).
CORRAL     := $(or $(CARGO_TARGET_DIR),target)/debug/corral
# Debian packages of the C, C++ and Zig guests (clang, wasi-libc...) and of
# the tests (nc, redis-server, prometheus with promtool and tmux for tests/observe.rs).
DEB_PACKAGES := clang lld wasi-libc libclang-rt-dev-wasm32 libc++-dev-wasm32 \
                netcat-openbsd redis-server prometheus tmux

.PHONY: all demo test guests host lint bench prereqs clean bindings fuzz fuzz-parsers

all: host guests

# What a fresh machine lacks: Debian packages (installed when run as root,
# else the command to run is printed) and the wasm targets the guests need.
prereqs:
	@./scripts/prereqs $(DEB_PACKAGES)

# Guest workers: components for wasm32-wasip2, plus one preview1 core module.
guests: prereqs
	cd $(GUESTS_DIR) && $(CARGO) build --release --quiet --target-dir target
	cd $(GUESTS_DIR) && $(CARGO) build --release --quiet --target-dir target -p hello-p1 -p exit-p1 -p tool-p1 --target wasm32-wasip1
	$(MAKE) -C guests/c
	$(MAKE) -C guests/cpp
	$(MAKE) -C guests/zig
	$(MAKE) -C guests/python -j2
	$(MAKE) -C guests/js -j2

# Regenerates the committed C bindings (C, C++, Zig guests) after a change
# to wit/; needs wit-bindgen-cli 0.63.
bindings:
	$(MAKE) -C guests/c bindings

host: prereqs
	$(CARGO) build --quiet

test: guests
	$(CARGO) test --workspace --no-fail-fast

demo: guests host
	@./examples/demo.sh $(CORRAL)

# check-layout: the layout rules of issue 14 (no wasmtime in ipc/ and vfs/,
# no file over 600 lines, no import cycle between top-level modules).
lint: prereqs
	./scripts/check-layout
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	cd $(GUESTS_DIR) && $(CARGO) fmt --all -- --check
	rustfmt --check --edition 2024 fuzz/fuzz_targets/*.rs

# The config parsers' property tests (tests/parsers.rs) with many more
# generated cases than `make test` runs: arbitrary text and near-valid
# manifests and policies with extreme values. About 2.5 minutes here.
# Then the guest-driven fuzzer of the host's functions (tests/host_fuzz.rs)
# over FUZZ_SEEDS seeds of FUZZ_OPS calls each, and the filesystem against
# Linux (tests/fs_diff.rs) over FUZZ_FS_CASES sequences per mount kind.
FUZZ_CASES    ?= 200000
FUZZ_SEEDS    ?= 400
FUZZ_OPS      ?= 3000
FUZZ_FS_CASES ?= 50000
fuzz: guests fuzz-parsers
	PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) test --test parsers
	HOST_FUZZ_SEEDS=$(FUZZ_SEEDS) HOST_FUZZ_OPS=$(FUZZ_OPS) $(CARGO) test --test host_fuzz -- --nocapture
	PROPTEST_CASES=$(FUZZ_FS_CASES) $(CARGO) test --test fs_diff

# The cargo-fuzz targets of the config parsers (fuzz/), FUZZ_SECONDS each,
# seeded with the examples' manifests and policies. Installs cargo-fuzz when
# it is missing. cargo fuzz asks rustc for flags of nightly's; on stable
# Rust, RUSTC_BOOTSTRAP lets this one build take them. A finding stops the
# run and is left in fuzz/artifacts/TARGET/.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := manifest policy mount_spec addr_rule units
fuzz-parsers: prereqs
	@command -v cargo-fuzz > /dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz build --dev --sanitizer none
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  mkdir -p corpus/$$t && \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --dev --sanitizer none $$t corpus/$$t ../examples -- \
	    -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=10 -print_final_stats=1 || exit 1; \
	done

bench: guests
	$(CARGO) bench --bench compare

clean:
	$(CARGO) clean
	cd $(GUESTS_DIR) && $(CARGO) clean
