#!/usr/bin/env bash
# lab/test-all.sh: what `make test` runs, arranged for a cold machine with 2 cores. Cold, the lab's build takes
# most of the time and leaves part of the CPU idle, while the tools (helm, staticcheck, ...), lint and fuzzing
# need no lab: they run beside it at the lowest CPU priority, their lines prefixed with [lint]. Once the lab is
# built, the router translators start building in the background at the lowest priority (lab/cmd/prebuild; a lab
# test that needs one finds it built or waits under its lock). Once the lint side is done too, the unit tier and
# then the lab tier run one after the other, at normal priority: their tests measure latencies and wait on
# deadlines, which work beside them at the same priority would skew. Exits non-zero at the first part that failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
MAKE=${MAKE:-make}
: "${CANARYFLOW_CACHE:?set by the Makefile}"
logs=$CANARYFLOW_CACHE/lab/logs
mkdir -p "$logs"
T0=$SECONDS
say() { echo "[test] $* ($((SECONDS - T0))s)"; }

nice -n 19 bash -c "$MAKE --no-print-directory tools && $MAKE --no-print-directory lint && $MAKE --no-print-directory fuzz" \
	> >(sed -u 's/^/[lint] /') 2>&1 &
lint_pid=$!
say "tools, lint and fuzzing started beside the lab's build at nice 19"

./lab/build.sh
build_rc=$?
say "lab build ended: exit $build_rc"
if ((build_rc == 0)); then
	nice -n 19 "${GO:-go}" run ./lab/cmd/prebuild >"$logs/prebuild.log" 2>&1 &
	say "the router translators build in the background at nice 19 (log: $logs/prebuild.log)"
fi
wait "$lint_pid"
rc=$?
say "tools, lint and fuzzing ended: exit $rc"
((build_rc == 0 && rc == 0)) || exit 1

$MAKE --no-print-directory test-unit || exit 1
say "unit tier passed"
$MAKE --no-print-directory test-lab || exit 1
say "lab tier passed"
