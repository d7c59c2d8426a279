# Corral: `make demo` runs the classic scenarios, `make test` runs every test.
CARGO      ?= cargo
GUESTS_DIR := guests/rust
P2_OUT     := $(GUESTS_DIR)/target/wasm32-wasip2/release
CORRAL     := target/debug/corral

.PHONY: all demo test guests host lint bench targets clean bindings

all: host guests

# The wasm targets the guests build for, added once per toolchain.
targets:
	@rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
	@rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1

# Guest workers: components for wasm32-wasip2, plus one preview1 core module.
guests: targets
	cd $(GUESTS_DIR) && $(CARGO) build --release --quiet --target-dir target
	cd $(GUESTS_DIR) && $(CARGO) build --release --quiet --target-dir target -p hello-p1 --target wasm32-wasip1
	$(MAKE) -C guests/c
	$(MAKE) -C guests/cpp
	$(MAKE) -C guests/zig
	$(MAKE) -C guests/python -j2
	$(MAKE) -C guests/js -j2

# Regenerates the committed C bindings (C, C++, Zig guests) after a change
# to wit/; needs wit-bindgen-cli 0.63.
bindings:
	$(MAKE) -C guests/c bindings

host:
	$(CARGO) build --quiet

test: guests
	$(CARGO) test --workspace --no-fail-fast

demo: guests host
	@./examples/demo.sh $(CORRAL)

# check-layout: the layout rules of issue 14 (no wasmtime in ipc/ and vfs/,
# no file over 600 lines, no import cycle between top-level modules).
lint:
	./scripts/check-layout
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	cd $(GUESTS_DIR) && $(CARGO) fmt --all -- --check

bench: guests
	$(CARGO) bench --bench compare

clean:
	$(CARGO) clean
	cd $(GUESTS_DIR) && $(CARGO) clean
