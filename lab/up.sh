#!/usr/bin/env bash
# lab/up.sh: start the lab (see lab/README.md) on loopback and in the network
# namespace $LAB_NETNS, then print one summary. If the lab already runs, only
# print the summary; if a part of it runs, stop that part first. A component
# that fails to start stops the others and prints its last log lines.
set -euo pipefail
T0=$SECONDS
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mkdir -p "$LAB_RUN"
exec 8>"$LAB_RUN/up.lock"
flock 8

KUBECTL="$LAB_BIN/kubectl"
PKI="$LAB_RUN/pki"
KUBECONFIG_FILE="$LAB_RUN/kubeconfig"

step() { echo "[lab] $1: $2 ($((SECONDS - T0))s)"; }

summary() {
	echo "[lab] up ($((SECONDS - T0))s). Endpoints:"
	if [[ $LAB_TEMPORAL == postgres ]]; then
		echo "  Temporal        $LAB_HOST:$TEMPORAL_PORT (namespace default; production server on PostgreSQL $LAB_HOST:$POSTGRES_PORT)"
	else
		echo "  Temporal        $LAB_HOST:$TEMPORAL_PORT (namespace default)"
		echo "  Temporal Web UI http://$LAB_HOST:$TEMPORAL_UI_PORT"
	fi
	cat <<-EOF
		  Kubernetes API  https://$LAB_HOST:$APISERVER_PORT   kubeconfig: $KUBECONFIG_FILE
		  kubectl         $KUBECTL --kubeconfig $KUBECONFIG_FILE
	EOF
	if ((LAB_SCALE_NODES > 0)); then
		echo "  Pods            Ready through kwok alone on $LAB_SCALE_NODES nodes (lab-node-0…), /20 each in $LAB_SCALE_POD_PREFIX.0.0/16"
	else
		cat <<-EOF
			  Traefik         http://$LAB_HOST:$TRAEFIK_WEB_PORT (IngressRoutes, entrypoint web)
			  Traefik Gateway http://$LAB_HOST:$TRAEFIK_GATEWAY_PORT (Gateway $LAB_GATEWAY_NAMESPACE/$LAB_GATEWAY_NAME, listener http)
			  Traefik metrics http://$LAB_HOST:$TRAEFIK_METRICS_PORT/metrics
			  Prometheus      http://$LAB_HOST:$PROMETHEUS_PORT
			  Pods            $LAB_POD_CIDR in netns $LAB_NETNS (node $LAB_NODE)
		EOF
	fi
	echo "  Logs            $LAB_LOGS     Env for tests: $LAB_RUN/lab.env"
}

[[ ${CANARYFLOW_LAB_CALLER:-} == labtest ]] || cancel_labtest_watcher
if lab_running; then
	echo "[lab] already up; not starting a second copy"
	summary
	exit 0
fi
if lab_any_running; then
	echo "[lab] a part of the lab is running; stopping it first"
	"$LAB_ROOT/lab/down.sh"
fi

need=(temporal etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok labctl)
((LAB_SCALE_NODES > 0)) || need+=(traefik podnet)
for b in "${need[@]}"; do
	[[ -x "$LAB_BIN/$b" ]] || { echo "[lab] $LAB_BIN/$b is missing: run make lab-build" >&2; exit 1; }
done

mkdir -p "$LAB_PIDS" "$LAB_LOGS" "$PKI"
rm -f "$LAB_RUN/lab.env"

# fail NAME MSG: print the component's last log lines, stop everything, exit.
fail() {
	local name=$1
	echo "[lab] $name: FAILED: $2" >&2
	if [[ -f "$LAB_LOGS/$name.log" ]]; then
		echo "----- last lines of $LAB_LOGS/$name.log -----" >&2
		tail -n 30 "$LAB_LOGS/$name.log" >&2
		echo "-----" >&2
	fi
	"$LAB_ROOT/lab/down.sh" >&2 || true
	exit 1
}

# start NAME CMD...: start a component as its own session leader, log to logs/NAME.log.
start() {
	local name=$1 pid
	shift
	echo "=== $(date -Is) $*" >>"$LAB_LOGS/$name.log"
	setsid "$@" </dev/null >>"$LAB_LOGS/$name.log" 2>&1 8>&- &
	pid=$!
	echo "$pid $(proc_start "$pid")" >"$LAB_PIDS/$name.pid"
}

# wait_for NAME SECONDS CHECK...: poll CHECK until it succeeds.
wait_for() {
	local name=$1 timeout=$2 t
	shift 2
	t=$SECONDS
	until "$@" >/dev/null 2>&1; do
		lab_pid "$name" >/dev/null || fail "$name" "process exited"
		((SECONDS - t < timeout)) || fail "$name" "not ready after ${timeout}s (check: $*)"
		sleep 0.2
	done
	step "$name" "${WAIT_WHAT:-ready} (pid $(lab_pid "$name"))"
}

kubectl_lab() { "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

# ---------------------------------------------------------------- certificates (kept across runs)
if [[ ! -f $PKI/admin.token || ! -f $PKI/server.crt || ! -f $PKI/sa.key ]]; then
	(
		cd "$PKI"
		openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=canaryflow-lab-ca" \
			-keyout ca.key -out ca.crt 2>/dev/null
		openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout server.key -out server.csr 2>/dev/null
		printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
		openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
			-extfile server.ext -out server.crt 2>/dev/null
		openssl genrsa -out sa.key 2048 2>/dev/null
		openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
		head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >admin.token
		chmod 600 ./*.key admin.token
	)
	step pki "created certificates and the admin token in $PKI"
fi
TOKEN=$(cat "$PKI/admin.token")
printf '%s,admin,admin,"system:masters"\n' "$TOKEN" >"$PKI/tokens.csv"
cat >"$KUBECONFIG_FILE" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster:
    server: https://$LAB_HOST:$APISERVER_PORT
    certificate-authority: $PKI/ca.crt
users:
- name: admin
  user:
    token: $TOKEN
contexts:
- name: lab
  context: {cluster: lab, user: admin}
current-context: lab
EOF
chmod 600 "$KUBECONFIG_FILE"

# ---------------------------------------------------------------- network namespace
# `ip netns add` makes /run/netns a mount point; remember whether we made it,
# so that down.sh leaves no mount behind. The scale lab's pods answer nothing: no namespace.
if ((LAB_SCALE_NODES == 0)); then
	if ! mountpoint -q /run/netns; then touch "$LAB_RUN/netns-mount-ours"; fi
	ip netns add "$LAB_NETNS"
	ip link add "$LAB_VETH_HOST" type veth peer name "$LAB_VETH_NS" netns "$LAB_NETNS"
	ip addr add "$LAB_LINK_HOST_IP/30" dev "$LAB_VETH_HOST"
	ip link set "$LAB_VETH_HOST" up
	ip -n "$LAB_NETNS" link set lo up
	ip -n "$LAB_NETNS" addr add "$LAB_LINK_NS_IP/30" dev "$LAB_VETH_NS"
	ip -n "$LAB_NETNS" link set "$LAB_VETH_NS" up
	ip route replace "$LAB_POD_CIDR" via "$LAB_LINK_NS_IP" dev "$LAB_VETH_HOST"
	step netns "$LAB_NETNS: $LAB_POD_CIDR via $LAB_VETH_HOST ($LAB_LINK_HOST_IP) -> $LAB_LINK_NS_IP"
fi

# ---------------------------------------------------------------- Temporal
if [[ $LAB_TEMPORAL == postgres ]]; then
	source "$LAB_ROOT/lab/temporal-postgres.sh"
	start_temporal_postgres
else
	start temporal "$LAB_BIN/temporal" server start-dev --ip "$LAB_HOST" --port "$TEMPORAL_PORT" \
		--ui-ip "$LAB_HOST" --ui-port "$TEMPORAL_UI_PORT" --http-port "$TEMPORAL_HTTP_PORT" \
		--metrics-port "$TEMPORAL_METRICS_PORT" --db-filename "$LAB_RUN/temporal.sqlite" \
		--namespace default --log-level warn
	wait_for temporal 60 "$LAB_BIN/temporal" operator cluster health --address "$LAB_HOST:$TEMPORAL_PORT"
	WAIT_WHAT="Web UI answers" wait_for temporal 30 curl_lab -o /dev/null "http://$LAB_HOST:$TEMPORAL_UI_PORT/"
	"$LAB_BIN/labctl" search-attributes --address "$LAB_HOST:$TEMPORAL_PORT" --namespace default >>"$LAB_LOGS/temporal.log" 2>&1 ||
		fail temporal "registering search attributes"
	step temporal "$(tail -n 1 "$LAB_LOGS/temporal.log")"
fi

# ---------------------------------------------------------------- Kubernetes
rm -rf "$LAB_RUN/etcd"
start etcd "$LAB_BIN/etcd" --name lab --data-dir "$LAB_RUN/etcd" \
	--listen-client-urls "http://$LAB_HOST:$ETCD_PORT" --advertise-client-urls "http://$LAB_HOST:$ETCD_PORT" \
	--listen-peer-urls "http://$LAB_HOST:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://$LAB_HOST:$ETCD_PEER_PORT" \
	--initial-cluster "lab=http://$LAB_HOST:$ETCD_PEER_PORT" --unsafe-no-fsync --log-level warn
wait_for etcd 30 curl_lab "http://$LAB_HOST:$ETCD_PORT/health"

start kube-apiserver "$LAB_BIN/kube-apiserver" \
	--etcd-servers "http://$LAB_HOST:$ETCD_PORT" \
	--bind-address "$LAB_HOST" --advertise-address "$LAB_HOST" --secure-port "$APISERVER_PORT" \
	--tls-cert-file "$PKI/server.crt" --tls-private-key-file "$PKI/server.key" \
	--client-ca-file "$PKI/ca.crt" \
	--token-auth-file "$PKI/tokens.csv" --authorization-mode RBAC \
	--service-account-issuer https://kubernetes.default.svc.cluster.local \
	--service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
	--service-cluster-ip-range "$LAB_SERVICE_CIDR" --endpoint-reconciler-type none \
	--enable-priority-and-fairness=false --allow-privileged=true --profiling=false --v=1
wait_for kube-apiserver 90 curl_lab --cacert "$PKI/ca.crt" -H "Authorization: Bearer $TOKEN" \
	"https://$LAB_HOST:$APISERVER_PORT/readyz"

# The scale lab creates thousands of pods at once: the controller-manager and the scheduler talk to the API server
# without client rate limits (as kwokctl's disableQPSLimits), so they are not what the benchmark measures.
unlimited=()
((LAB_SCALE_NODES == 0)) || unlimited=(--kube-api-qps=5000 --kube-api-burst=10000)
start kube-controller-manager "$LAB_BIN/kube-controller-manager" \
	--kubeconfig "$KUBECONFIG_FILE" --authentication-kubeconfig "$KUBECONFIG_FILE" \
	--authorization-kubeconfig "$KUBECONFIG_FILE" --leader-elect=false \
	--bind-address "$LAB_HOST" --secure-port "$KCM_PORT" \
	--service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
	--allocate-node-cidrs=false --configure-cloud-routes=false \
	--service-cluster-ip-range "$LAB_SERVICE_CIDR" --profiling=false --v=1 "${unlimited[@]}"
wait_for kube-controller-manager 60 curl_lab -k "https://$LAB_HOST:$KCM_PORT/healthz"

start kube-scheduler "$LAB_BIN/kube-scheduler" \
	--kubeconfig "$KUBECONFIG_FILE" --authentication-kubeconfig "$KUBECONFIG_FILE" \
	--authorization-kubeconfig "$KUBECONFIG_FILE" --leader-elect=false \
	--bind-address "$LAB_HOST" --secure-port "$SCHEDULER_PORT" --profiling=false --v=1 "${unlimited[@]}"
wait_for kube-scheduler 60 curl_lab -k "https://$LAB_HOST:$SCHEDULER_PORT/healthz"

# The fake node: kwok manages it (annotation), its podCIDR lies in the namespace. The scale lab has
# LAB_SCALE_NODES of them, each with a /20 of its own that no namespace routes (its pods answer nothing).
node_yaml() {
	cat <<EOF
apiVersion: v1
kind: Node
metadata:
  name: $1
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: $1
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
spec:
  podCIDR: $2
  podCIDRs: [$2]
---
EOF
}
if ((LAB_SCALE_NODES == 0)); then
	node_yaml "$LAB_NODE" "$LAB_POD_CIDR" | kubectl_lab apply -f - >/dev/null
else
	((LAB_SCALE_NODES <= 16)) || { echo "[lab] LAB_SCALE_NODES=$LAB_SCALE_NODES: at most 16 nodes (16 /20s in a /16)" >&2; exit 2; }
	for ((i = 0; i < LAB_SCALE_NODES; i++)); do
		node_yaml "lab-node-$i" "$LAB_SCALE_POD_PREFIX.$((i * 16)).0/20"
	done | kubectl_lab apply -f - >/dev/null
fi
# kwok's upstream stages, without its pod-delete: lab/kwok/pod-terminate.yaml takes a deleted pod down as a kubelet
# does (not ready at once, gone with its IP at the end of its grace period).
awk 'BEGIN { RS = "---\n"; ORS = "" } $0 != "" && !/name: pod-delete\n/ { print "---\n" $0 }' \
	"$LAB_SHARE/kwok-stages.yaml" >"$LAB_RUN/kwok-stages.yaml"
grep -q 'name: pod-delete$' "$LAB_RUN/kwok-stages.yaml" && { echo "[lab] kwok: upstream pod-delete stage still there" >&2; exit 1; }
start kwok "$LAB_BIN/kwok" --kubeconfig "$KUBECONFIG_FILE" --config "$LAB_RUN/kwok-stages.yaml" \
	--config "$LAB_ROOT/lab/kwok/pod-ready-again.yaml" --config "$LAB_ROOT/lab/kwok/pod-terminate.yaml" \
	--manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
	--cidr "$LAB_POD_CIDR" --node-ip "$LAB_LINK_NS_IP" --server-address "$LAB_HOST:$KWOK_PORT" \
	--node-lease-duration-seconds 40
wait_for kwok 60 kubectl_lab wait --for=condition=Ready "node/$LAB_NODE" --timeout=1s

if ((LAB_SCALE_NODES == 0)); then
	# podnet runs podinfo.sh for every new image tag as long as the lab is up: give it a copy in the run directory,
	# so a lab started from a checkout that is later removed (a git worktree, a CI clone) keeps starting pods.
	mkdir -p "$LAB_RUN/scripts"
	cp "$LAB_ROOT/lab/podinfo.sh" "$LAB_ROOT/lab/env.sh" "$LAB_RUN/scripts/"
	start podnet "$LAB_BIN/podnet" --kubeconfig "$KUBECONFIG_FILE" --node "$LAB_NODE" --netns "$LAB_NETNS" \
		--podinfo "$LAB_RUN/scripts/podinfo.sh" --dir "$LAB_RUN/pods"
	wait_for podnet 30 grep -q "watching pods" "$LAB_LOGS/podnet.log"
fi

# ---------------------------------------------------------------- Traefik and its CRDs
kubectl_lab apply --server-side --force-conflicts -f "$LAB_SHARE/crds/traefik.yaml" -f "$LAB_SHARE/crds/gateway-api.yaml" \
	>"$LAB_LOGS/crds.log" 2>&1 || fail crds "applying CRDs"
kubectl_lab wait --for condition=established --timeout=60s crd --all >>"$LAB_LOGS/crds.log" 2>&1 ||
	fail crds "CRDs not established"
step crds "Traefik and Gateway API $(cat "$LAB_SHARE/crds/gateway-api.version") CRDs established"
kubectl_lab apply -f - >/dev/null <<EOF
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: $LAB_GATEWAY_CLASS
spec:
  controllerName: traefik.io/gateway-controller
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: $LAB_GATEWAY_NAME
  namespace: $LAB_GATEWAY_NAMESPACE
spec:
  gatewayClassName: $LAB_GATEWAY_CLASS
  listeners:
  - name: http
    protocol: HTTP
    port: $TRAEFIK_GATEWAY_PORT
    allowedRoutes:
      namespaces:
        from: All
EOF

if ((LAB_SCALE_NODES == 0)); then
	k8s_flags=()
	for p in kubernetescrd kubernetesgateway; do
		k8s_flags+=("--providers.$p=true" "--providers.$p.endpoint=https://$LAB_HOST:$APISERVER_PORT"
			"--providers.$p.token=$TOKEN" "--providers.$p.certAuthFilePath=$PKI/ca.crt")
	done
	start traefik "$LAB_BIN/traefik" \
		--global.checkNewVersion=false --global.sendAnonymousUsage=false \
		--api.dashboard=false --log.level=INFO --log.noColor=true \
		"--entryPoints.web.address=$LAB_HOST:$TRAEFIK_WEB_PORT" --entryPoints.web.asDefault=true \
		"--entryPoints.gateway.address=$LAB_HOST:$TRAEFIK_GATEWAY_PORT" \
		"--entryPoints.metrics.address=$LAB_HOST:$TRAEFIK_METRICS_PORT" \
		--ping=true --ping.entryPoint=metrics \
		--metrics.prometheus=true --metrics.prometheus.entryPoint=metrics \
		--metrics.prometheus.addServicesLabels=true --metrics.prometheus.addRoutersLabels=true \
		--metrics.prometheus.addEntryPointsLabels=true \
		--metrics.prometheus.buckets=0.005,0.01,0.025,0.05,0.1,0.25,0.5,1,2.5,5 \
		--providers.kubernetescrd.allowCrossNamespace=true \
		--providers.kubernetescrd.allowEmptyServices=true \
		"${k8s_flags[@]}"
	wait_for traefik 60 curl_lab "http://$LAB_HOST:$TRAEFIK_METRICS_PORT/ping"
	WAIT_WHAT="Gateway $LAB_GATEWAY_NAMESPACE/$LAB_GATEWAY_NAME programmed" wait_for traefik 60 kubectl_lab wait --for=condition=Programmed -n "$LAB_GATEWAY_NAMESPACE" \
		"gateway/$LAB_GATEWAY_NAME" --timeout=1s
fi

# ---------------------------------------------------------------- Prometheus
if ((LAB_SCALE_NODES == 0)); then
	mkdir -p "$LAB_RUN/prometheus"
	cat >"$LAB_RUN/prometheus.yml" <<-EOF
	global:
	  scrape_interval: 1s
	  evaluation_interval: 1s
	scrape_configs:
	- job_name: traefik
	  scrape_interval: 1s
	  static_configs:
	  - targets: ['$LAB_HOST:$TRAEFIK_METRICS_PORT']
	EOF
	rm -rf "$LAB_RUN/prometheus/data"
	start prometheus /usr/bin/prometheus --config.file "$LAB_RUN/prometheus.yml" \
		--storage.tsdb.path "$LAB_RUN/prometheus/data" --storage.tsdb.retention.time 6h \
		--web.listen-address "$LAB_HOST:$PROMETHEUS_PORT" --log.level warn
	wait_for prometheus 60 curl_lab "http://$LAB_HOST:$PROMETHEUS_PORT/-/ready"
fi

# ---------------------------------------------------------------- env for tests
# The scale lab has no Traefik, Prometheus or pod network, the production server no Web UI: their URLs stay empty.
prom_url=http://$LAB_HOST:$PROMETHEUS_PORT traefik_url=http://$LAB_HOST:$TRAEFIK_WEB_PORT
traefik_gateway_url=http://$LAB_HOST:$TRAEFIK_GATEWAY_PORT traefik_metrics_url=http://$LAB_HOST:$TRAEFIK_METRICS_PORT
ui_url=http://$LAB_HOST:$TEMPORAL_UI_PORT
((LAB_SCALE_NODES == 0)) || prom_url='' traefik_url='' traefik_gateway_url='' traefik_metrics_url=''
[[ $LAB_TEMPORAL != postgres ]] || ui_url=''
cat >"$LAB_RUN/lab.env.tmp" <<EOF
# Written by lab/up.sh; read by lab/labtest.
LAB_KUBECONFIG=$KUBECONFIG_FILE
LAB_KUBE_SERVER=https://$LAB_HOST:$APISERVER_PORT
LAB_KUBE_CA=$PKI/ca.crt
LAB_KUBE_TOKEN=$TOKEN
LAB_TEMPORAL_ADDRESS=$LAB_HOST:$TEMPORAL_PORT
LAB_TEMPORAL_NAMESPACE=default
LAB_TEMPORAL_UI_URL=$ui_url
LAB_TEMPORAL=$LAB_TEMPORAL
LAB_PROMETHEUS_URL=$prom_url
LAB_TRAEFIK_URL=$traefik_url
LAB_TRAEFIK_GATEWAY_URL=$traefik_gateway_url
LAB_TRAEFIK_METRICS_URL=$traefik_metrics_url
LAB_GATEWAY_NAMESPACE=$LAB_GATEWAY_NAMESPACE
LAB_GATEWAY_NAME=$LAB_GATEWAY_NAME
LAB_GATEWAY_LISTENER=http
LAB_BIN=$LAB_BIN
LAB_NETNS=$LAB_NETNS
LAB_POD_CIDR=$LAB_POD_CIDR
LAB_NODE=$LAB_NODE
LAB_SCALE_NODES=$LAB_SCALE_NODES
EOF
mv "$LAB_RUN/lab.env.tmp" "$LAB_RUN/lab.env"
summary
