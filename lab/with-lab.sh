#!/usr/bin/env bash
# lab/with-lab.sh CMD...: make sure the lab is up (starting it if it is not),
# run CMD, and stop the lab afterwards only if this script started it.
# Exits with CMD's status. `make test` runs `go test ./...` through it, so the
# lab starts once per run and every test package shares it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
(($#)) || { echo "usage: lab/with-lab.sh CMD..." >&2; exit 2; }

started=0
stop_if_started() {
	if ((started)); then
		echo "[lab] with-lab: stopping the lab it started"
		"$LAB_ROOT/lab/down.sh" || true
	fi
}
trap stop_if_started EXIT
trap 'exit 130' INT TERM

if lab_running; then
	echo "[lab] with-lab: the lab is already up; leaving it up afterwards"
else
	started=1
	"$LAB_ROOT/lab/up.sh"
fi

status=0
"$@" || status=$?
exit "$status"
