# shellcheck shell=bash
# lab/lib.sh: process bookkeeping shared by up.sh, down.sh and with-lab.sh.
# Every lab process is started as the leader of its own session (setsid), and
# its PID plus start time are kept in $LAB_RUN/pids/<name>.pid, so down.sh stops
# exactly those processes (and their children, such as podnet's podinfos).
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

LAB_PIDS="$LAB_RUN/pids"
LAB_LOGS="$LAB_RUN/logs"
# Start order; down.sh stops in reverse, every component any variant starts (LAB_ALL_COMPONENTS).
LAB_ALL_COMPONENTS=(postgres temporal etcd kube-apiserver kube-controller-manager kube-scheduler kwok podnet traefik prometheus)
LAB_COMPONENTS=()
[[ $LAB_TEMPORAL == postgres ]] && LAB_COMPONENTS+=(postgres)
LAB_COMPONENTS+=(temporal etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
((LAB_SCALE_NODES > 0)) || LAB_COMPONENTS+=(podnet traefik prometheus)
T0=${T0:-$SECONDS}

curl_lab() { curl --noproxy '*' -fsS --max-time 2 "$@"; }

# proc_start PID: the process's start time (field 22 of /proc/PID/stat).
proc_start() { [[ -r /proc/$1/stat ]] && sed 's/^.*) //' "/proc/$1/stat" | awk '{print $20}'; }

# lab_pid NAME: print the PID of a running lab component, or fail.
lab_pid() {
	local f="$LAB_PIDS/$1.pid" pid start
	[[ -f $f ]] || return 1
	read -r pid start <"$f" || return 1
	[[ -n $pid && "$(proc_start "$pid" 2>/dev/null)" == "$start" ]] || return 1
	echo "$pid"
}

# lab_running: every component runs and the namespace exists.
lab_running() {
	local c
	((LAB_SCALE_NODES > 0)) || ip netns list 2>/dev/null | grep -qw "$LAB_NETNS" || return 1
	for c in "${LAB_COMPONENTS[@]}"; do lab_pid "$c" >/dev/null || return 1; done
}

# lab_any_running: some component (or the namespace) is left.
lab_any_running() {
	local c
	ip netns list 2>/dev/null | grep -qw "$LAB_NETNS" && return 0
	for c in "${LAB_ALL_COMPONENTS[@]}"; do lab_pid "$c" >/dev/null && return 0; done
	return 1
}

# group_alive PGID: a live (not zombie) process is in the process group.
group_alive() { ps -e -o pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ {found = 1} END {exit !found}'; }

# stop_component NAME: SIGTERM to its process group, SIGKILL after 15 s.
stop_component() {
	local name=$1 pid i t=$SECONDS
	pid=$(lab_pid "$name") || { rm -f "$LAB_PIDS/$name.pid"; return 0; }
	kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 150; i++)); do
		group_alive "$pid" || break
		sleep 0.1
	done
	if group_alive "$pid"; then
		echo "[lab] $name: still running after 15 s, SIGKILL"
		kill -KILL -- "-$pid" 2>/dev/null || true
	fi
	rm -f "$LAB_PIDS/$name.pid"
	echo "[lab] $name: stopped (pid $pid, $((SECONDS - t))s)"
}

# cancel_labtest_watcher: a lab started by lab/labtest is stopped by a watcher
# once the last test process exits; when a person runs up.sh or down.sh, the lab
# becomes theirs and that watcher goes (not when the watcher itself runs down.sh).
cancel_labtest_watcher() {
	local f="$LAB_RUN/labtest-watcher.pid" pid start
	[[ -f $f ]] || return 0
	read -r pid start <"$f" || true
	if [[ -n ${pid:-} && "$(proc_start "$pid" 2>/dev/null)" == "${start:-}" && $pid != "$PPID" ]]; then
		kill "$pid" 2>/dev/null && echo "[lab] the test run that started the lab will no longer stop it"
	fi
	rm -f "$f"
}
