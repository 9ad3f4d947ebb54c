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
XTOOLS_VERSION ?= v0.52.0
REVIVE_VERSION ?= v1.17.0
GOIMPORTS := $(TOOLS)/goimports-$(XTOOLS_VERSION)/goimports
DEADCODE := $(TOOLS)/deadcode-$(XTOOLS_VERSION)/deadcode
REVIVE := $(TOOLS)/revive-$(REVIVE_VERSION)/revive
GO_FILES = $$(git ls-files '*.go' 2>/dev/null; git ls-files -o --exclude-standard '*.go' 2>/dev/null)

.PHONY: bench-scale all build tools test test-unit test-lab test-long lint fmt vet staticcheck revive deadcode fuzz bench lab-build lab-up lab-down demo clean

all: build

build:
	$(GO) build -o bin/worker ./worker
	$(GO) build -o bin/starter ./starter
	$(GO) build -o bin/loadtester ./loadtester/cmd/loadtester

## tools: helm and staticcheck from the Go module proxy, into the cache, once per version.
tools: $(HELM) $(STATICCHECK) $(GOIMPORTS) $(DEADCODE) $(REVIVE)

$(HELM):
	GOBIN=$(dir $@) $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

## test: both tiers: lint, fuzz, the unit tier with the race detector, then the lab tier (the packages that have
## lab tests, run with -tags lab on the lab, started once), by lab/test-all.sh: the tools, lint and fuzzing run
## at the lowest CPU priority beside the lab's build (their lines prefixed [lint]), and the router translators
## build in the background from the end of the lab's build (log in $(CACHE)/lab/logs/prebuild.log), so that cold
## they use the CPU the builds and the tests leave idle. Cached, the builds are stamp checks.
test:
	MAKE="$(MAKE)" GO="$(GO)" ./lab/test-all.sh

## test-unit: every test that needs no running lab, in every package, with -race. Lab tests carry the build tag
## `lab` (//go:build lab) and are left out; CANARYFLOW_LAB=off makes a lab call in an untagged test fail at once.
## Tests that start a private Temporal dev server use the lab's temporal binary (built here if missing); the Web
## UI test (e2e/webui) drives the dev server's UI in Debian's chromium (installed here if missing).
test-unit: tools
	./lab/build.sh temporal chromium
	@mkdir -p $(CACHE)/lab/logs
	set -o pipefail; CANARYFLOW_LAB=off $(GO) test -race -count=1 -timeout 30m ./... 2>&1 | tee $(CACHE)/lab/logs/test-unit.log \
		|| { ./lab/test-digest.sh $(CACHE)/lab/logs/test-unit.log; exit 1; }

## test-lab: the lab tier: the packages with //go:build lab test files, on the lab (lab/with-lab.sh starts it
## once and stops it afterwards if it started it). CANARYFLOW_LONG=1 (make test-long) adds the long fault variants.
LAB_PKGS = $$(grep -rl --include='*_test.go' '^//go:build lab' . | xargs -n1 dirname | sort -u)
## A failed run ends with lab/test-digest.sh: its failures in brief, after the lab's shutdown lines.
test-lab: lab-build tools
	@mkdir -p $(CACHE)/lab/logs
	set -o pipefail; ./lab/with-lab.sh $(GO) test -tags lab -count=1 -timeout 60m $(LAB_PKGS) 2>&1 | tee $(CACHE)/lab/logs/test-lab.log \
		|| { ./lab/test-digest.sh $(CACHE)/lab/logs/test-lab.log; exit 1; }

## test-long: the lab tier with the long variants of the fault suite.
test-long: lab-build tools
	CANARYFLOW_LONG=1 ./lab/with-lab.sh $(GO) test -tags lab -count=1 -timeout 120m $(LAB_PKGS)

## fuzz: bounded fuzzing of the spec loader; it must find no panic.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $(FUZZTIME) ./api/v1beta1

## lint: gofmt and goimports (our imports grouped last), go vet and staticcheck over both tiers, revive
## (exported symbols documented, no unused parameters; revive.toml), and no dead code (deadcode over the
## binaries and every test, lab tier included).
lint: fmt vet staticcheck revive deadcode

fmt: $(GOIMPORTS)
	@out=$$(gofmt -l $(GO_FILES)); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@out=$$($(GOIMPORTS) -local github.com/canaryflow/canaryflow -l $(GO_FILES)); \
	if [ -n "$$out" ]; then echo "goimports -local github.com/canaryflow/canaryflow would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	$(GO) vet -tags lab ./...

staticcheck: $(STATICCHECK)
	$(STATICCHECK) -tags lab ./...

revive: $(REVIVE)
	GOFLAGS=-tags=lab $(REVIVE) -config revive.toml ./...

deadcode: $(DEADCODE)
	@out=$$($(DEADCODE) -test -tags lab ./...); \
	if [ -n "$$out" ]; then echo "dead code (deadcode -test -tags lab):"; echo "$$out"; exit 1; fi

# Installed from the Go module proxy into the cache, once per version.
$(STATICCHECK):
	GOBIN=$(dir $@) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

$(GOIMPORTS):
	GOBIN=$(dir $@) $(GO) install golang.org/x/tools/cmd/goimports@$(XTOOLS_VERSION)

$(DEADCODE):
	GOBIN=$(dir $@) $(GO) install golang.org/x/tools/cmd/deadcode@$(XTOOLS_VERSION)

$(REVIVE):
	GOBIN=$(dir $@) $(GO) install github.com/mgechev/revive@$(REVIVE_VERSION)

## bench: the Go benchmarks, figures in BENCHMARKS.md. BenchmarkConcurrentRollouts starts its own Temporal dev
## server from the lab's temporal binary and runs CANARYFLOW_BENCH_ROLLOUTS (default 1000) rollouts at once.
bench: lab-build
	$(GO) test -run '^$$' -bench . -benchmem -timeout 60m -tags lab ./...

## bench-scale: BenchmarkScale (e2e/scale): N canaries (default 100) rolled out at once by CONTROLLER=both (the
## default: canaryflow, then Flagger v1.36.1 on the same control plane, with a table of both), canaryflow or
## flagger; canaryflow with WORKERS worker processes (default 1) on one task queue. On the scale lab (lab/scale.sh:
## NODES kwok nodes, pods Ready through kwok alone) with TEMPORAL=postgres (Temporal's production server on
## PostgreSQL, the default) or dev (the CLI's dev server). The scale lab starts fresh for each run and stops after
## it (KEEP=1 leaves it up). Figures in BENCHMARKS.md.
N ?= 100
WORKERS ?= 1
TEMPORAL ?= postgres
NODES ?= 4
CONTROLLER ?= both
SCALE_ENV = LAB_TEMPORAL=$(TEMPORAL) LAB_SCALE_NODES=$(NODES)
bench-scale: lab-build
	./lab/build.sh temporalserver postgres flagger
	$(SCALE_ENV) ./lab/scale.sh down >/dev/null
	$(SCALE_ENV) ./lab/scale.sh up
	eval "$$($(SCALE_ENV) ./lab/scale.sh env)" && CANARYFLOW_BENCH_ROLLOUTS=$(N) CANARYFLOW_BENCH_WORKERS=$(WORKERS) CANARYFLOW_BENCH_CONTROLLER=$(CONTROLLER) \
		$(GO) test -tags lab -run '^$$' -bench BenchmarkScale -benchtime 1x -timeout 90m ./e2e/scale/; \
		rc=$$?; [ "$(KEEP)" = 1 ] || $(SCALE_ENV) ./lab/scale.sh down >/dev/null; exit $$rc

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
