# dypegraph — build, run and test. `make run` and `make test` work on a fresh machine with Go 1.26.
GO        ?= go
BIN       ?= bin/dypegraph
FUZZTIME  ?= 10s
# Example workflow that `make run` executes until the server exists.
EXAMPLE   ?= workflows/image_invert.json

.PHONY: all build run test fmt fmt-check vet unit fuzz clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -o $(BIN) ./cmd/dypegraph

run: build
	$(BIN) run --output-dir output --input-dir input --temp-dir temp $(EXAMPLE)

test: fmt-check vet unit fuzz

fmt:
	gofmt -w $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')

fmt-check:
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './.git/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 ./...

# Every Fuzz target in the module runs briefly (FUZZTIME each); Go allows one target per run.
fuzz:
	@set -e; for f in $$(grep -rl --include='*_test.go' '^func Fuzz' .); do \
		dir=$$(dirname $$f); \
		for t in $$(grep -o '^func Fuzz[A-Za-z0-9_]*' $$f | sed 's/^func //'); do \
			echo "fuzz $$dir $$t"; \
			$(GO) test -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZTIME) $$dir; \
		done; \
	done

clean:
	rm -rf bin
