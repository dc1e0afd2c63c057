# The two commands of the quick start: `make demo` and `make test`.
CARGO ?= cargo

.PHONY: demo test build bench setup

setup:
	@./scripts/setup.sh

## Build (release) and run the self-contained demo: two model servers + the proxy.
demo: setup
	$(CARGO) build --release
	./target/release/blueshift demo

## Everything CI checks: format, lints, every policy under conf/, and the whole test suite.
test:
	@./scripts/setup.sh --test
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) build
	@./target/debug/blueshift demo --prepare
	@for f in conf/*.yaml; do ./target/debug/blueshift check "$$f" >/dev/null || exit 1; echo "check $$f: ok"; done
	$(CARGO) test

build: setup
	$(CARGO) build --release

## Criterion benchmark of the per-request decision.
bench: setup
	$(CARGO) bench --bench decision
