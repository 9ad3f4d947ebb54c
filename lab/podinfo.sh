#!/usr/bin/env bash
# lab/podinfo.sh TAG: print the path of a podinfo binary that reports version
# TAG (podinfo's version is a link-time variable), building it on first use from
# the podinfo tools module that lab/build.sh prepared. A warm build only links.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
tag=${1:?usage: podinfo.sh TAG}
[[ $tag =~ ^[A-Za-z0-9._-]+$ ]] || { echo "podinfo.sh: bad tag $tag" >&2; exit 2; }
out="$LAB_PODINFO/$tag/podinfo"
if [[ ! -x $out ]]; then
	mkdir -p "$LAB_PODINFO"
	exec 9>"$LAB_PODINFO/.lock"
	flock 9
	if [[ ! -x $out ]]; then
		cd "$LAB_SRC/podinfo"
		GOWORK=off go build -trimpath \
			-ldflags "-s -w -X github.com/stefanprodan/podinfo/pkg/version.VERSION=$tag" \
			-o "$out.tmp" github.com/stefanprodan/podinfo/cmd/podinfo >&2
		mv "$out.tmp" "$out"
	fi
fi
echo "$out"
