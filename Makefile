# dypegraph — build, run and test. `make run` and `make test` work on a fresh machine with Go 1.26.
GO        ?= go
BIN       ?= bin/dypegraph
FUZZTIME  ?= 20000x
# The folder that holds the server's data/, models/, input/, output/ and temp/ (kept out of the
# source tree's own models/ package folder), and the example `make example` executes.
EXAMPLE   ?= workflows/image_invert.json
RUN_DIR   ?= .dypegraph
PORT      ?= 8188

.PHONY: all build run example test fmt fmt-check vet unit fuzz clean ui ui-test e2e cuda-kernels

all: build

build:
	CGO_ENABLED=0 $(GO) build -o $(BIN) ./cmd/dypegraph

# Starts the ComfyUI-compatible server on 127.0.0.1:$(PORT); put models in $(RUN_DIR)/models.
run: ui build
	@mkdir -p $(RUN_DIR)/models $(RUN_DIR)/input $(RUN_DIR)/output $(RUN_DIR)/temp $(RUN_DIR)/data
	$(BIN) serve --port $(PORT) --data-dir $(RUN_DIR)/data --models-dir $(RUN_DIR)/models --input-dir $(RUN_DIR)/input --output-dir $(RUN_DIR)/output --temp-dir $(RUN_DIR)/temp

# Runs one bundled example workflow without the server.
example: build
	$(BIN) run --output-dir $(RUN_DIR)/output --input-dir $(RUN_DIR)/input --temp-dir $(RUN_DIR)/temp --models-dir $(RUN_DIR)/models $(EXAMPLE)
	@echo "images written under $(RUN_DIR)/output"

test: fmt-check vet cuda-kernels unit fuzz ui-test

fmt:
	gofmt -w $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')

fmt-check:
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './.git/*' -not -path './ui/node_modules/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 ./...

# Every Fuzz target in the module runs briefly (FUZZTIME each); Go allows one target per run.
# The budget is an execution count, not a duration: a duration makes Go's fuzz coordinator race
# its own deadline on a loaded machine and fail with a bare "context deadline exceeded" that no
# input caused (golang/go#51484). 20000 runs take 2-14 s per target on a 2-core machine.
fuzz:
	@set -e; for f in $$(grep -rl --include='*_test.go' '^func Fuzz' .); do \
		dir=$$(dirname $$f); \
		for t in $$(grep -o '^func Fuzz[A-Za-z0-9_]*' $$f | sed 's/^func //'); do \
			echo "fuzz $$dir $$t"; \
			$(GO) test -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZTIME) $$dir; \
		done; \
	done

# Every CUDA kernel compiles with clang-19 and the committed PTX matches the sources (without
# clang-19 only the source hash is checked).
cuda-kernels:
	$(GO) run ./cuda/internal/genptx -check

# The web UI: npm packages from ui/package-lock.json, built into ui/dist (embedded by the binary).
ui:
	cd ui && npm ci --no-audit --no-fund && npm run build

ui-test:
	cd ui && npm ci --no-audit --no-fund && npm test

# Browser smoke test in Debian's chromium (/usr/bin/chromium) against a binary built with the UI.
e2e: ui build
	cd ui && DYPEGRAPH_BIN=../$(BIN) E2E_OUT=e2e-artifacts npm run e2e

clean:
	rm -rf bin
