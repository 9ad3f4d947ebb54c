# canaryflow: progressive delivery on Temporal.
# Heavy builds (the lab: Temporal CLI, Kubernetes, Traefik, podinfo) are cached under $(CACHE),
# outside the work tree, so fresh clones on the same machine (CI) reuse them.
SHELL := /bin/bash
export GOTOOLCHAIN := local
CACHE ?= $(or $(CANARYFLOW_CACHE),$(HOME)/.cache/canaryflow)
export CANARYFLOW_CACHE := $(CACHE)
GO ?= go
TOOLS := $(CACHE)/tools
STATICCHECK_VERSION ?= v0.8.2
HELM_VERSION ?= v3.22.0
FUZZTIME ?= 20s
HELM := $(TOOLS)/helm-$(HELM_VERSION)/helm
# The deploy tests run this helm (make tools installs it).
export CANARYFLOW_HELM := $(HELM)
STATICCHECK := $(TOOLS)/staticcheck-$(STATICCHECK_VERSION)/staticcheck

.PHONY: all build tools test test-unit lint fmt vet staticcheck fuzz bench lab-build lab-up lab-down demo clean

all: build

build:
	$(GO) build -o bin/worker ./worker
	$(GO) build -o bin/starter ./starter
	$(GO) build -o bin/loadtester ./loadtester/cmd/loadtester

## tools: helm and staticcheck from the Go module proxy, into the cache, once per version.
tools: $(HELM) $(STATICCHECK)

$(HELM):
	GOBIN=$(dir $@) $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

## test: every test the project has; builds and starts what the tests need.
test: lab-build tools
	$(MAKE) lint
	$(MAKE) fuzz
	./lab/with-lab.sh $(GO) test -count=1 -timeout 60m ./...

## test-unit: the fast tests that need no lab: the packages whose tests do not import lab/labtest.
test-unit:
	CANARYFLOW_LAB=off $(GO) test -count=1 $$($(GO) list -f '{{.ImportPath}} {{join .TestImports " "}} {{join .XTestImports " "}}' ./... \
		| grep -v 'canaryflow/lab/labtest' | cut -d' ' -f1)

## fuzz: bounded fuzzing of the spec loader; it must find no panic.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $(FUZZTIME) ./api/v1beta1

lint: fmt vet staticcheck

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null; git ls-files -o --exclude-standard '*.go' 2>/dev/null)); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck: $(STATICCHECK)
	$(STATICCHECK) ./...

# Installed from the Go module proxy into the cache, once per version.
$(STATICCHECK):
	GOBIN=$(dir $@) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

## bench: the Go benchmarks, figures in BENCHMARKS.md. BenchmarkConcurrentRollouts starts its own Temporal dev
## server from the lab's temporal binary and runs CANARYFLOW_BENCH_ROLLOUTS (default 1000) rollouts at once.
bench: lab-build
	$(GO) test -run '^$$' -bench . -benchmem -timeout 60m ./...

## The local lab (see lab/README.md).
lab-build:
	./lab/build.sh

lab-up: lab-build
	./lab/up.sh

lab-down:
	./lab/down.sh

## demo: the seed scenario on the lab, narrated: a podinfo canary initialised, promoted, rolled back, approved, aborted.
demo: lab-up
	$(GO) run ./e2e/demo

clean:
	rm -rf bin
