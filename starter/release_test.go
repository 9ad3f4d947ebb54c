package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const releaseFile = `apiVersion: canaryflow.io/v1alpha1
kind: Release
metadata: {name: podinfo-6-0-1}
spec:
  images: {podinfod: ghcr.io/stefanprodan/podinfo:6.0.1}
  canary:
    metadata: {name: podinfo, namespace: test}
    spec:
      provider: kubernetes
      targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
      service: {port: 9898}
      analysis: {interval: 10s, iterations: 2, threshold: 1}
  waves:
    - {name: staging, bakeTime: 10m, clusters: [{name: staging}]}
    - {name: eu, gate: approval, clusters: [{name: eu-1}, {name: eu-2, taskQueue: eu-2-blue}]}
`

func TestReleaseCheckPrintsWavesAndBadFilesExit2BeforeAnyConnection(t *testing.T) {
	for _, tc := range []struct {
		name, from, to string
		code           int
		want           string
	}{
		{"valid", "", "", exitOK, "wave staging gate=auto bake=10m0s: staging (canaryflow-staging)\nwave eu gate=approval bake=0s: eu-1 (canaryflow-eu-1), eu-2 (eu-2-blue)"},
		{"unknown cluster field", "{name: eu-1}", "{name: eu-1, context: eu}", exitBadInput, "spec.waves[1].clusters[0].context: unknown field"},
		{"duplicate cluster", "{name: eu-1}", "{name: staging}", exitBadInput, `cluster "staging" is already in spec.waves[0].clusters[0]`},
		{"empty wave", "[{name: eu-1}, {name: eu-2, taskQueue: eu-2-blue}]", "[]", exitBadInput, "spec.waves[1].clusters: empty wave"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "release.yaml")
			require.NoError(t, os.WriteFile(path, []byte(strings.Replace(releaseFile, tc.from, tc.to, 1)), 0o644))
			var out, errOut bytes.Buffer
			code := run([]string{"release", "-f", path, "--check"}, nil, &out, &errOut)
			require.Equal(t, tc.code, code, out.String()+errOut.String())
			require.Contains(t, out.String()+errOut.String(), tc.want)
		})
	}
}
