#!/usr/bin/env bash
# lab/build.sh [component...]: build or install every lab component, with pinned
# versions, into $CANARYFLOW_CACHE/lab. A component whose stamp (pinned version +
# hash of its recipe below) matches and whose outputs exist is skipped in
# seconds. Long go builds print a heartbeat every minute, so no step is silent
# for 10 minutes. Components: temporal etcd kube kwok podinfo traefik crds apt chromium labgo.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

export GOWORK=off GOFLAGS="${GOFLAGS:--buildvcs=false}"
NICE="nice -n 10"
T0=$SECONDS
mkdir -p "$LAB_BIN" "$LAB_SRC" "$LAB_STAMPS" "$LAB_SHARE" "$LAB_PODINFO" "$LAB_DIR/logs"

say() { echo "[lab] $COMP: $* ($((SECONDS - CT0))s, total $((SECONDS - T0))s)"; }

# run CMD...: run a build command, output to the component's log; print a
# heartbeat every 60 s; on failure print the log's last lines.
run() {
	local log="$LAB_DIR/logs/build-$COMP.log"
	echo "+ $*" >>"$log"
	"$@" >>"$log" 2>&1 &
	local pid=$! last=$SECONDS
	while kill -0 "$pid" 2>/dev/null; do
		sleep 1
		if ((SECONDS - last >= 60)); then
			last=$SECONDS
			say "still working (log: $log)"
		fi
	done
	if ! wait "$pid"; then
		echo "[lab] $COMP: FAILED: $*" >&2
		echo "----- last lines of $log -----" >&2
		tail -n 40 "$log" >&2
		return 1
	fi
}

moddir() { go mod download -json "$1" | jq -r .Dir; }
modgomod() { go mod download -json "$1" | jq -r .GoMod; }

# current NAME VERSION OUTPUT...: true when the stamp of NAME matches VERSION and its recipe, and every output
# exists. Sets WANT, the stamp a build writes.
current() {
	local name=$1 version=$2 f
	shift 2
	WANT="$version $(declare -f "build_$name" | sha256sum | cut -c1-16)"
	[[ -f "$LAB_STAMPS/$name.stamp" && "$(cat "$LAB_STAMPS/$name.stamp")" == "$WANT" ]] || return 1
	for f in "$@"; do [[ -e "$f" ]] || return 1; done
}

# component NAME VERSION OUTPUT...: prints "current" when it is (see current), else runs the recipe, the
# function build_NAME, and writes the stamp.
component() {
	COMP=$1
	CT0=$SECONDS
	if current "$@"; then
		say "current ($2)"
		return 0
	fi
	say "building $2"
	: >"$LAB_DIR/logs/build-$COMP.log"
	"build_$COMP"
	echo "$WANT" >"$LAB_STAMPS/$COMP.stamp"
	say "done"
}

# ---------------------------------------------------------------- recipes

build_temporal() {
	run env GOBIN="$LAB_BIN" $NICE go install "github.com/temporalio/cli/cmd/temporal@$TEMPORAL_CLI_VERSION"
}

build_etcd() {
	local d="$LAB_SRC/etcd"
	rm -rf "$d" && mkdir -p "$d" && cd "$d"
	printf 'module canaryflow.lab/etcd\n\ngo 1.26\n' >go.mod
	cat >main.go <<-'EOF'
		package main

		import (
			"os"

			"go.etcd.io/etcd/server/v3/etcdmain"
		)

		func main() { etcdmain.Main(os.Args) }
	EOF
	run go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
	run $NICE go build -trimpath -ldflags=-s\ -w -o "$LAB_BIN/etcd" .
}

# Kubernetes cannot be "go install"ed (its go.mod replaces the staging modules
# with local paths); a tools module replaces each of them by its released v0.X.
build_kube() {
	local d="$LAB_SRC/kube" minor gomod m pkgs=() c
	rm -rf "$d" && mkdir -p "$d" && cd "$d"
	printf 'module canaryflow.lab/kube\n\ngo 1.26\n' >go.mod
	gomod=$(modgomod "k8s.io/kubernetes@$KUBE_VERSION")
	# Every "k8s.io/x => ./staging/src/k8s.io/x" of kubernetes' own go.mod.
	local staging
	staging=$(awk '$2 == "=>" && $3 ~ /^\.\/staging\// {print $1}' "$gomod")
	[[ $(wc -w <<<"$staging") -gt 20 ]] || { echo "[lab] kube: staging list too short: $staging" >&2; return 1; }
	for m in $staging; do echo "replace $m => $m $KUBE_STAGING_VERSION" >>go.mod; done
	say "$(wc -w <<<"$staging") staging modules replaced by $KUBE_STAGING_VERSION"
	for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
		pkgs+=("k8s.io/kubernetes/cmd/$c")
	done
	run go get "${pkgs[@]/%/@$KUBE_VERSION}"
	minor=${KUBE_VERSION#v1.}
	minor=${minor%%.*}
	local ldf="-s -w" p
	for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ldf+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
	done
	run $NICE go build -trimpath -ldflags "$ldf" -o "$LAB_BIN/" "${pkgs[@]}"
}

build_kwok() {
	run env GOBIN="$LAB_BIN" $NICE go install -trimpath -ldflags=-s\ -w "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
	# kwok exits with "no stages found" without Stage objects: take the
	# upstream node and pod stages from the module source.
	local src out="$LAB_SHARE/kwok-stages.yaml" f
	src=$(moddir "sigs.k8s.io/kwok@$KWOK_VERSION")
	: >"$out"
	for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
		pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
		[[ -f "$src/kustomize/stage/$f" ]] || { echo "[lab] kwok: missing stage $f" >&2; return 1; }
		{ echo "---"; cat "$src/kustomize/stage/$f"; } >>"$out"
	done
}

# podinfo: one base build; lab/podinfo.sh links one binary per image tag
# (the version is an ldflag). The two tags the tests use are prebuilt.
build_podinfo() {
	local d="$LAB_SRC/podinfo"
	rm -rf "$d" && mkdir -p "$d" && cd "$d"
	printf 'module canaryflow.lab/podinfo\n\ngo 1.26\n' >go.mod
	run go get "github.com/stefanprodan/podinfo/cmd/podinfo@$PODINFO_MODULE_VERSION"
	rm -rf "${LAB_PODINFO:?}"/*
	local tag
	for tag in 6.0.0 6.0.1; do run "$LAB_ROOT/lab/podinfo.sh" "$tag"; done
}

# Traefik: a tools module that copies traefik's own fork replaces and excludes.
build_traefik() {
	local d="$LAB_SRC/traefik" gomod
	rm -rf "$d" && mkdir -p "$d" && cd "$d"
	printf 'module canaryflow.lab/traefik\n\ngo 1.26\n' >go.mod
	gomod=$(modgomod "github.com/traefik/traefik/v3@$TRAEFIK_VERSION")
	awk '
		/^(replace|exclude) \($/ { blk = $1; next }
		blk != "" && /^\)/ { blk = ""; next }
		blk != "" && NF > 0 && $1 !~ /^\/\// { if ($0 !~ /=> *\.\.?\//) print blk, $0; next }
		/^(replace|exclude) [^(]/ { if ($0 !~ /=> *\.\.?\//) print }
	' "$gomod" >>go.mod
	say "copied $(grep -cE '^(replace|exclude)' go.mod) replace/exclude lines from traefik's go.mod"
	run go get -tool "github.com/traefik/traefik/v3/cmd/traefik@$TRAEFIK_VERSION"
	run $NICE go build -trimpath \
		-ldflags "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=${TRAEFIK_VERSION#v}" \
		-o "$LAB_BIN/traefik" github.com/traefik/traefik/v3/cmd/traefik
}

# CRDs: Traefik's from its module; Gateway API's standard channel from the
# sigs.k8s.io/gateway-api version Traefik requires.
build_crds() {
	local tdir gomod gwv gdir out="$LAB_SHARE/crds"
	tdir=$(moddir "github.com/traefik/traefik/v3@$TRAEFIK_VERSION")
	gomod=$(modgomod "github.com/traefik/traefik/v3@$TRAEFIK_VERSION")
	gwv=$(awk '$1 == "sigs.k8s.io/gateway-api" {print $2; exit}' "$gomod")
	[[ -n "$gwv" ]] || { echo "[lab] crds: no gateway-api in traefik's go.mod" >&2; return 1; }
	gdir=$(moddir "sigs.k8s.io/gateway-api@$gwv")
	rm -rf "$out" && mkdir -p "$out"
	cp "$tdir/docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml" "$out/traefik.yaml"
	local f
	for f in "$gdir"/config/crd/standard/*.yaml; do
		[[ "$(basename "$f")" == kustomization.yaml ]] && continue
		{ echo "---"; cat "$f"; } >>"$out/gateway-api.yaml"
	done
	echo "$gwv" >"$out/gateway-api.version"
	say "gateway-api $gwv: $(grep -c '^kind: CustomResourceDefinition' "$out/gateway-api.yaml") CRDs"
}

# Debian packages, installed without starting their services.
build_apt() {
	local p missing=()
	for p in $APT_PACKAGES; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
	if ((${#missing[@]})); then
		local before policy=/usr/sbin/policy-rc.d made=0
		before=$(pgrep -x prometheus || true)
		if [[ ! -e $policy ]]; then
			printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made=1
		fi
		export DEBIAN_FRONTEND=noninteractive
		run apt-get update
		run apt-get install -y --no-install-recommends "${missing[@]}"
		((made)) && rm -f "$policy"
		# Should a postinst have started a service anyway, stop it.
		for p in $(pgrep -x prometheus || true); do
			grep -qx "$p" <<<"$before" || { say "stopping prometheus $p started by its package"; kill "$p" || true; }
		done
	fi
	command -v prometheus >/dev/null && command -v hey >/dev/null
}

# Chromium for the Web UI test (e2e/webui drives the dev server's UI headless). Debian's package, kept out of
# the apt component so that the unit tier (make test-unit) installs it without the lab's other packages.
build_chromium() {
	export DEBIAN_FRONTEND=noninteractive
	run apt-get update
	run apt-get install -y --no-install-recommends chromium
	command -v chromium >/dev/null
}

# The benchmarks' production Temporal server (make bench-scale TEMPORAL=postgres): the server and its SQL schema
# tool from lab/benchtemporal, a tools module with the lab's temporal CLI's module versions (server v1.29.1), so
# that the build reuses what the CLI's build compiled; the schema files come from the same module.
build_temporalserver() {
	cd "$LAB_ROOT/lab/benchtemporal"
	run $NICE go build -o "$LAB_BIN/temporal-server" go.temporal.io/server/cmd/server
	run $NICE go build -o "$LAB_BIN/temporal-sql-tool" go.temporal.io/server/cmd/tools/sql
	local dir
	dir=$(go list -m -f '{{.Dir}}' go.temporal.io/server)
	rm -rf "$LAB_SHARE/temporal-schema"
	mkdir -p "$LAB_SHARE/temporal-schema"
	cp -r "$dir/schema/postgresql" "$LAB_SHARE/temporal-schema/"
	chmod -R u+w "$LAB_SHARE/temporal-schema"
}

# Flagger v1.36.1 (the version the module proxy serves) and its CRDs, for the side-by-side benchmark (make
# bench-scale CONTROLLER=flagger): built from lab/benchflagger, a tools module with Flagger's own module versions.
build_flagger() {
	cd "$LAB_ROOT/lab/benchflagger"
	run $NICE go build -o "$LAB_BIN/flagger" github.com/fluxcd/flagger/cmd/flagger
	mkdir -p "$LAB_SHARE/crds"
	cp "$(go list -m -f '{{.Dir}}' github.com/fluxcd/flagger)/artifacts/flagger/crd.yaml" "$LAB_SHARE/crds/flagger.yaml"
	chmod u+w "$LAB_SHARE/crds/flagger.yaml"
}

# PostgreSQL from Debian, for the benchmarks' Temporal server; installed without starting its service.
build_postgres() {
	if ! dpkg-query -W -f='${Status}' postgresql 2>/dev/null | grep -q 'ok installed'; then
		local policy=/usr/sbin/policy-rc.d made=0
		if [[ ! -e $policy ]]; then
			printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made=1
		fi
		export DEBIAN_FRONTEND=noninteractive
		run apt-get update
		run apt-get install -y --no-install-recommends postgresql
		((made)) && rm -f "$policy"
	fi
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null
}

# The lab's own Go programs (pod network, lab control) from this repository.
build_labgo() {
	cd "$LAB_ROOT"
	run $NICE go build -o "$LAB_BIN/" ./lab/cmd/podnet ./lab/cmd/labctl
}

# ---------------------------------------------------------------- main

want=("$@")
((${#want[@]})) || want=(apt chromium temporal etcd kwok podinfo kube traefik crds labgo)

# spec C: the version and outputs of component C, into SPEC.
spec() {
	case $1 in
	temporal) SPEC=("$TEMPORAL_CLI_VERSION" "$LAB_BIN/temporal") ;;
	etcd) SPEC=("$ETCD_VERSION" "$LAB_BIN/etcd") ;;
	kube) SPEC=("$KUBE_VERSION/$KUBE_STAGING_VERSION" "$LAB_BIN/kube-apiserver" \
		"$LAB_BIN/kube-controller-manager" "$LAB_BIN/kube-scheduler" "$LAB_BIN/kubectl") ;;
	kwok) SPEC=("$KWOK_VERSION" "$LAB_BIN/kwok" "$LAB_SHARE/kwok-stages.yaml") ;;
	podinfo) SPEC=("$PODINFO_MODULE_VERSION $(sha256sum "$LAB_ROOT/lab/podinfo.sh" | cut -c1-16)" \
		"$LAB_PODINFO/6.0.0/podinfo" "$LAB_PODINFO/6.0.1/podinfo") ;;
	traefik) SPEC=("$TRAEFIK_VERSION" "$LAB_BIN/traefik") ;;
	crds) SPEC=("$TRAEFIK_VERSION" "$LAB_SHARE/crds/traefik.yaml" "$LAB_SHARE/crds/gateway-api.yaml") ;;
	apt) SPEC=("$APT_PACKAGES" /usr/bin/prometheus /usr/bin/hey) ;;
	chromium) SPEC=(debian /usr/bin/chromium) ;;
	temporalserver) SPEC=("$(grep -m1 'go.temporal.io/server ' "$LAB_ROOT/lab/benchtemporal/go.mod" | awk '{print $2}') $(sha256sum "$LAB_ROOT/lab/benchtemporal/go.sum" | cut -c1-16)" \
		"$LAB_BIN/temporal-server" "$LAB_BIN/temporal-sql-tool" "$LAB_SHARE/temporal-schema/postgresql") ;;
	postgres) SPEC=(debian /usr/bin/psql) ;;
	flagger) SPEC=("v1.36.1 $(sha256sum "$LAB_ROOT/lab/benchflagger/go.sum" | cut -c1-16)" "$LAB_BIN/flagger" "$LAB_SHARE/crds/flagger.yaml") ;;
	labgo) SPEC=() ;;
	*) echo "[lab] unknown component $1" >&2 && exit 2 ;;
	esac
}

# all_current: every wanted component is current (labgo never is: it is always rebuilt).
all_current() {
	local c
	for c in "${want[@]}"; do
		[[ $c != labgo ]] || return 1
		spec "$c"
		current "$c" "${SPEC[@]}" || return 1
	done
}

exec 9>"$LAB_DIR/build.lock"
if ! flock -n 9; then
	# Another build holds the lock (make test builds the whole lab while the unit tier asks for two components):
	# when everything asked for is current already, there is nothing to wait for.
	if all_current; then
		COMP=all CT0=$T0
		say "current (${want[*]}), beside another lab build"
		exit 0
	fi
	echo "[lab] waiting for another lab build to finish (lock: $LAB_DIR/build.lock)"
	flock 9
fi

for c in "${want[@]}"; do
	if [[ $c == labgo ]]; then
		# Always rebuilt: go's own cache makes this take seconds when nothing changed.
		COMP=labgo CT0=$SECONDS
		build_labgo
		say "done"
		continue
	fi
	spec "$c"
	component "$c" "${SPEC[@]}"
done
COMP=all CT0=$T0
say "lab built in $LAB_DIR"
