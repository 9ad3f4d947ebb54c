package v1beta1

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkLoadCanary measures loading, defaulting and validating the Traefik seed Canary: the work starter
// validate and starter rollout do before anything changes.
func BenchmarkLoadCanary(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "flagger", "traefik-canary.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Load(bytes.NewReader(data), "bench", ValidateOptions{Capabilities: designCaps}); err != nil {
			b.Fatal(err)
		}
	}
}
