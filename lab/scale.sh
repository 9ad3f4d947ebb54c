#!/usr/bin/env bash
# lab/scale.sh up|down|env: the scale lab of make bench-scale, beside the usual lab (its own run directory and
# ports, 30xxx), so a benchmark never disturbs the lab tests use. LAB_SCALE_NODES kwok nodes (default 4, each a
# /20 of pod IPs), pods Ready through kwok alone, no Traefik or Prometheus process (the benchmark answers the
# metric queries itself), and LAB_TEMPORAL=dev (default) or postgres for Temporal's production server.
# `env` prints the variables (for eval) that point lab/up.sh, lab/down.sh and lab/labtest at it.
set -euo pipefail
scale_env() {
	cat <<-VARS
		export CANARYFLOW_LAB_RUN=${CANARYFLOW_CACHE:-$HOME/.cache/canaryflow}/lab/run-scale
		export LAB_SCALE_NODES=${LAB_SCALE_NODES:-4} LAB_TEMPORAL=${LAB_TEMPORAL:-dev}
		export LAB_NETNS=cflab-scale LAB_VETH_HOST=cfsc0 LAB_VETH_NS=cfsc1 LAB_SERVICE_CIDR=10.96.0.0/16
		export LAB_TEMPORAL_PORT=31233 LAB_TEMPORAL_UI_PORT=31333 LAB_TEMPORAL_HTTP_PORT=31243 LAB_TEMPORAL_METRICS_PORT=31244
		export LAB_ETCD_PORT=31379 LAB_ETCD_PEER_PORT=31380 LAB_APISERVER_PORT=31443 LAB_KCM_PORT=31257
		export LAB_SCHEDULER_PORT=31259 LAB_KWOK_PORT=31247 LAB_POSTGRES_PORT=31432
		export LAB_TRAEFIK_WEB_PORT=31080 LAB_TRAEFIK_GATEWAY_PORT=31081 LAB_TRAEFIK_METRICS_PORT=31082 LAB_PROMETHEUS_PORT=31090
	VARS
}
case ${1:-} in
env) scale_env ;;
up | down)
	eval "$(scale_env)"
	exec "$(dirname "${BASH_SOURCE[0]}")/$1.sh"
	;;
*)
	echo "usage: lab/scale.sh up|down|env (LAB_SCALE_NODES=N, LAB_TEMPORAL=dev|postgres)" >&2
	exit 2
	;;
esac
