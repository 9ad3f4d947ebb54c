# shellcheck shell=bash
# lab/temporal-postgres.sh: sourced by up.sh when LAB_TEMPORAL=postgres. Starts PostgreSQL from Debian (a fresh
# cluster under /var/lib/postgresql, loopback only) and Temporal's production server (temporal-server, built by
# `lab/build.sh temporalserver`) on it: persistence and SQL visibility with canaryflow's search attributes, the
# schemas set up by Temporal's own temporal-sql-tool. The frontend listens where the dev server would
# ($TEMPORAL_PORT), so everything else (worker, starter, tests) connects the same way. Benchmarks only: the
# dev server (SQLite) stays the lab's default. To see where their CPU goes: LAB_TEMPORAL_PPROF_PORT=N serves the
# server's Go profiles on localhost:N (/debug/pprof/), LAB_POSTGRES_STATEMENTS=1 loads pg_stat_statements
# (`SELECT calls, total_exec_time, query FROM pg_stat_statements ORDER BY 2 DESC` in the database temporal).

PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
# Outside $LAB_RUN: the postgres user cannot enter root's home, where the lab's cache lives.
PG_DATA="/var/lib/postgresql/canaryflow-lab-$POSTGRES_PORT/data"
PG_SOCKETS="/var/lib/postgresql/canaryflow-lab-$POSTGRES_PORT/sockets"
TEMPORAL_ROOT="$LAB_RUN/temporal-server"

start_temporal_postgres() {
	[[ -x "$PG_BIN/postgres" ]] || fail postgres "PostgreSQL is not installed: run lab/build.sh postgres"
	local b
	for b in temporal-server temporal-sql-tool; do
		[[ -x "$LAB_BIN/$b" ]] || fail temporal "$LAB_BIN/$b is missing: run lab/build.sh temporalserver"
	done
	# A fresh cluster each time, as etcd: a benchmark starts from empty tables. PostgreSQL refuses to run as root,
	# so its files belong to Debian's postgres user and the server runs as that user (setpriv execs in place, so
	# the PID down.sh stops is the postmaster's own).
	rm -rf "$PG_DATA" "$PG_SOCKETS"
	mkdir -p "$PG_DATA" "$PG_SOCKETS"
	chown postgres:postgres "$PG_DATA" "$PG_SOCKETS"
	setpriv --reuid=postgres --regid=postgres --init-groups "$PG_BIN/initdb" -D "$PG_DATA" -U postgres \
		--auth=trust -E UTF8 --locale=C.UTF-8 >>"$LAB_LOGS/postgres.log" 2>&1 || fail postgres "initdb"
	start postgres setpriv --reuid=postgres --regid=postgres --init-groups "$PG_BIN/postgres" -D "$PG_DATA" \
		-p "$POSTGRES_PORT" -k "$PG_SOCKETS" -c listen_addresses="$LAB_HOST" -c max_connections=300 \
		-c shared_buffers=256MB ${LAB_POSTGRES_STATEMENTS:+-c shared_preload_libraries=pg_stat_statements}
	wait_for postgres 60 "$PG_BIN/pg_isready" -h "$LAB_HOST" -p "$POSTGRES_PORT"
	psql -h "$LAB_HOST" -p "$POSTGRES_PORT" -U postgres -v ON_ERROR_STOP=1 -q \
		-c "CREATE ROLE temporal LOGIN SUPERUSER PASSWORD 'temporal'" >>"$LAB_LOGS/postgres.log" 2>&1 ||
		fail postgres "creating the temporal role"

	# The schemas, with Temporal's own tool: create the database, the base schema, then every versioned step.
	local sql=("$LAB_BIN/temporal-sql-tool" --plugin postgres12 --ep "$LAB_HOST" -p "$POSTGRES_PORT" -u temporal -pw temporal)
	local schema="$LAB_SHARE/temporal-schema/postgresql/v12" db dir
	for db in temporal temporal_visibility; do
		dir=$schema/temporal/versioned
		[[ $db == temporal_visibility ]] && dir=$schema/visibility/versioned
		{ "${sql[@]}" --db "$db" create-database &&
			"${sql[@]}" --db "$db" setup-schema -v 0.0 &&
			"${sql[@]}" --db "$db" update-schema -d "$dir"; } >>"$LAB_LOGS/temporal-sql-tool.log" 2>&1 ||
			fail temporal-sql-tool "schema of $db"
	done
	step postgres "databases temporal and temporal_visibility at the schema of $(basename "$(dirname "$(dirname "$schema")")")/$(basename "$schema")"

	mkdir -p "$TEMPORAL_ROOT/config/dynamicconfig"
	temporal_server_config >"$TEMPORAL_ROOT/config/development.yaml"
	# The limits a canaryflow fleet meets first on a fresh server; the rest are the server's defaults.
	cat >"$TEMPORAL_ROOT/config/dynamicconfig/lab.yaml" <<-EOF
		frontend.namespaceRPS:
		  - value: 20000
		frontend.namespaceCount:
		  - value: 10000
		frontend.rps:
		  - value: 20000
		history.rps:
		  - value: 20000
		matching.rps:
		  - value: 20000
		system.forceSearchAttributesCacheRefreshOnRead:
		  - value: true
		    constraints: {}
	EOF
	if [[ -n ${LAB_POSTGRES_STATEMENTS:-} ]]; then
		psql -h "$LAB_HOST" -p "$POSTGRES_PORT" -U postgres -v ON_ERROR_STOP=1 -q -d temporal \
			-c "CREATE EXTENSION pg_stat_statements" >>"$LAB_LOGS/postgres.log" 2>&1 ||
			fail postgres "creating pg_stat_statements (LAB_POSTGRES_STATEMENTS)"
	fi
	start temporal "$LAB_BIN/temporal-server" --root "$TEMPORAL_ROOT" --config config --env development --allow-no-auth \
		start
	wait_for temporal 120 "$LAB_BIN/temporal" operator cluster health --address "$LAB_HOST:$TEMPORAL_PORT"
	# The production server creates no namespace by itself (the dev server's --namespace does); a new one is seen
	# by every service once their namespace caches refresh (up to 10 s), so the search attributes are retried.
	"$LAB_BIN/temporal" operator namespace create --address "$LAB_HOST:$TEMPORAL_PORT" --namespace default \
		--retention 24h >>"$LAB_LOGS/temporal.log" 2>&1 || fail temporal "creating the namespace default"
	WAIT_WHAT="namespace default with canaryflow's search attributes" wait_for temporal 60 \
		"$LAB_BIN/labctl" search-attributes --address "$LAB_HOST:$TEMPORAL_PORT" --namespace default
	step temporal "production server $("$LAB_BIN/temporal-server" --version 2>/dev/null | awk '{print $NF}') on PostgreSQL"
}

# temporal_server_config: the server's static configuration, every service in one process, on the lab's ports.
temporal_server_config() {
	local p=$TEMPORAL_PORT m=$((TEMPORAL_PORT - 300))
	cat <<-EOF
		log:
		  stdout: true
		  level: warn
		persistence:
		  defaultStore: default
		  visibilityStore: visibility
		  numHistoryShards: ${LAB_TEMPORAL_SHARDS:-16}
		  datastores:
		    default:
		      sql:
		        pluginName: postgres12
		        databaseName: temporal
		        connectAddr: "$LAB_HOST:$POSTGRES_PORT"
		        connectProtocol: tcp
		        user: temporal
		        password: temporal
		        maxConns: 50
		        maxIdleConns: 50
		        maxConnLifetime: 1h
		    visibility:
		      sql:
		        pluginName: postgres12
		        databaseName: temporal_visibility
		        connectAddr: "$LAB_HOST:$POSTGRES_PORT"
		        connectProtocol: tcp
		        user: temporal
		        password: temporal
		        maxConns: 10
		        maxIdleConns: 10
		        maxConnLifetime: 1h
		global:
		  pprof:
		    port: ${LAB_TEMPORAL_PPROF_PORT:-0}
		  membership:
		    maxJoinDuration: 30s
		    broadcastAddress: "$LAB_HOST"
		  metrics:
		    prometheus:
		      framework: tally
		      timerType: histogram
		      listenAddress: "$LAB_HOST:$TEMPORAL_METRICS_PORT"
		services:
		  frontend:
		    rpc: {grpcPort: $p, membershipPort: $m, bindOnLocalHost: true, httpPort: $TEMPORAL_HTTP_PORT}
		  history:
		    rpc: {grpcPort: $((p + 1)), membershipPort: $((m + 1)), bindOnLocalHost: true}
		  matching:
		    rpc: {grpcPort: $((p + 2)), membershipPort: $((m + 2)), bindOnLocalHost: true}
		  worker:
		    rpc: {grpcPort: $((p + 6)), membershipPort: $((m + 6)), bindOnLocalHost: true}
		clusterMetadata:
		  enableGlobalNamespace: false
		  failoverVersionIncrement: 10
		  masterClusterName: active
		  currentClusterName: active
		  clusterInformation:
		    active:
		      enabled: true
		      initialFailoverVersion: 1
		      rpcName: frontend
		      rpcAddress: "$LAB_HOST:$p"
		dcRedirectionPolicy:
		  policy: noop
		dynamicConfigClient:
		  filepath: "$TEMPORAL_ROOT/config/dynamicconfig/lab.yaml"
		  pollInterval: 10s
	EOF
}
