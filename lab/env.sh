# shellcheck shell=bash
# lab/env.sh: the one place for the lab's pinned versions, paths and ports.
# Sourced by every lab script. The Go package lab/labtest reads the same values
# from $LAB_RUN/lab.env, which up.sh writes from these variables.

export GOTOOLCHAIN=local
CANARYFLOW_CACHE="${CANARYFLOW_CACHE:-$HOME/.cache/canaryflow}"
export CANARYFLOW_CACHE
LAB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"  # the repository
LAB_DIR="$CANARYFLOW_CACHE/lab"           # build products (stable across clones)
LAB_BIN="$LAB_DIR/bin"                    # temporal, etcd, kube-*, kubectl, kwok, traefik, podnet
LAB_SRC="$LAB_DIR/src"                    # tools modules
LAB_STAMPS="$LAB_DIR/stamps"              # <component>.stamp = version + recipe hash
LAB_SHARE="$LAB_DIR/share"                # CRDs, kwok stages
LAB_PODINFO="$LAB_DIR/podinfo"            # podinfo/<tag>/podinfo, one binary per image tag
LAB_RUN="${CANARYFLOW_LAB_RUN:-$LAB_DIR/run}"  # runtime state: pids, logs, certs, kubeconfig, sqlite
export LAB_ROOT LAB_DIR LAB_BIN LAB_SRC LAB_STAMPS LAB_SHARE LAB_PODINFO LAB_RUN

# Pinned versions.
TEMPORAL_CLI_VERSION=v1.5.1
KUBE_VERSION=v1.33.13
KUBE_STAGING_VERSION=v0.33.13
ETCD_VERSION=v3.5.21
KWOK_VERSION=v0.8.0
PODINFO_MODULE_VERSION=v1.8.1-0.20250910200901-e86405a8674e   # podinfo 6.9.2 (its tags lack a "v")
TRAEFIK_VERSION=v3.6.12
APT_PACKAGES="prometheus hey"

# Everything below can be overridden from the environment (LAB_<NAME>, e.g.
# LAB_TEMPORAL_PORT, LAB_NETNS) with CANARYFLOW_LAB_RUN, to run a second, separate
# lab beside the usual one.

# Variants. LAB_TEMPORAL: dev (the Temporal CLI's dev server, SQLite; the default) or postgres (Temporal's
# production server on PostgreSQL, lab/temporal-postgres.sh; benchmarks). LAB_SCALE_NODES: 0 for the usual lab;
# N > 0 for the scale lab of make bench-scale: N kwok nodes, each with its own /20 of pod IPs in
# LAB_SCALE_POD_PREFIX.0.0/16, pods Ready through kwok alone (no network namespace, no podinfo processes, no Traefik
# process, no Prometheus), and the controller-manager and scheduler without client rate limits.
LAB_TEMPORAL=${LAB_TEMPORAL:-dev}
LAB_SCALE_NODES=${LAB_SCALE_NODES:-0}
LAB_SCALE_POD_PREFIX=${LAB_SCALE_POD_PREFIX:-10.248}
export LAB_TEMPORAL LAB_SCALE_NODES

# Network namespace for pods: pods of the fake node get IPs in LAB_POD_CIDR and
# run inside LAB_NETNS; the host reaches them through a veth pair.
LAB_NETNS=${LAB_NETNS:-canaryflow-lab}
LAB_VETH_HOST=${LAB_VETH_HOST:-cflab0}
LAB_VETH_NS=${LAB_VETH_NS:-cflab1}
LAB_LINK_HOST_IP=${LAB_LINK_HOST_IP:-10.244.255.1}      # /30 link between host and namespace
LAB_LINK_NS_IP=${LAB_LINK_NS_IP:-10.244.255.2}
LAB_POD_CIDR=${LAB_POD_CIDR:-10.244.0.0/24}         # the kwok node's spec.podCIDR, routed into the namespace
LAB_SERVICE_CIDR=${LAB_SERVICE_CIDR:-10.0.0.0/24}
LAB_NODE=${LAB_NODE:-lab-node-0}

# Loopback ports.
LAB_HOST=127.0.0.1
TEMPORAL_PORT=${LAB_TEMPORAL_PORT:-7233}
TEMPORAL_UI_PORT=${LAB_TEMPORAL_UI_PORT:-8233}
TEMPORAL_HTTP_PORT=${LAB_TEMPORAL_HTTP_PORT:-7243}
TEMPORAL_METRICS_PORT=${LAB_TEMPORAL_METRICS_PORT:-7244}
ETCD_PORT=${LAB_ETCD_PORT:-22379}
ETCD_PEER_PORT=${LAB_ETCD_PEER_PORT:-22380}
APISERVER_PORT=${LAB_APISERVER_PORT:-16443}
KCM_PORT=${LAB_KCM_PORT:-20257}
SCHEDULER_PORT=${LAB_SCHEDULER_PORT:-20259}
KWOK_PORT=${LAB_KWOK_PORT:-20247}
TRAEFIK_WEB_PORT=${LAB_TRAEFIK_WEB_PORT:-18080}            # entrypoint "web": IngressRoutes (default entrypoint)
TRAEFIK_GATEWAY_PORT=${LAB_TRAEFIK_GATEWAY_PORT:-18081}        # entrypoint "gateway": the lab Gateway's HTTP listener
TRAEFIK_METRICS_PORT=${LAB_TRAEFIK_METRICS_PORT:-18082}        # entrypoint "metrics": /metrics and /ping
PROMETHEUS_PORT=${LAB_PROMETHEUS_PORT:-19090}
POSTGRES_PORT=${LAB_POSTGRES_PORT:-15432}                   # LAB_TEMPORAL=postgres only
LAB_GATEWAY_CLASS=${LAB_GATEWAY_CLASS:-traefik}
LAB_GATEWAY_NAME=${LAB_GATEWAY_NAME:-lab-gateway}
LAB_GATEWAY_NAMESPACE=${LAB_GATEWAY_NAMESPACE:-default}
