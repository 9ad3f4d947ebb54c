#!/usr/bin/env bash
# lab/down.sh: stop exactly what lab/up.sh started, by PID (in reverse order),
# and remove the lab's network namespace. Safe to run when nothing runs.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mkdir -p "$LAB_PIDS"
cancel_labtest_watcher
rm -f "$LAB_RUN/lab.env"
for ((i = ${#LAB_ALL_COMPONENTS[@]} - 1; i >= 0; i--)); do
	stop_component "${LAB_ALL_COMPONENTS[i]}"
done
if ip netns list 2>/dev/null | grep -qw "$LAB_NETNS"; then
	ip netns del "$LAB_NETNS"
	echo "[lab] netns: $LAB_NETNS removed"
fi
# The host end of the veth pair goes with the namespace; the route with it.
ip link del "$LAB_VETH_HOST" 2>/dev/null || true
if [[ -f "$LAB_RUN/netns-mount-ours" ]]; then
	if [[ -z "$(ip netns list 2>/dev/null)" ]] && mountpoint -q /run/netns; then
		umount /run/netns && echo "[lab] netns: unmounted /run/netns (lab-up mounted it)"
	fi
	rm -f "$LAB_RUN/netns-mount-ours"
fi
echo "[lab] down ($((SECONDS - T0))s)"
