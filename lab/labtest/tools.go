package labtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/canaryflow/canaryflow/lab/labbin"
)

// BuildTranslators builds every router translator the lab tier runs (APISIX's and NGINX's ingress controllers,
// skipper, contour, istiod), each as its tests would and under the same lock, so that `make test` can build them
// ahead, at low priority, while the unit tier and the lab tier run: a test that needs one then finds it built, or
// waits for the build in progress. Cached ones cost a stamp check. It goes on
// past a failure (the test that needs that translator builds it again and reports) and returns the first error.
func BuildTranslators(log io.Writer) error {
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	var first error
	for _, b := range []struct {
		name  string
		build func() error
	}{
		{"apisix-ingress-controller", func() error { _, _, err := buildAPISIX(); return err }},
		{"ingress-nginx", func() error { _, err := buildIngressNginx(root); return err }},
		{"contour", func() error { _, err := buildContour(); return err }},
		{"skipper", func() error { _, err := buildSkipper(); return err }},
		{"istiod", func() error { _, err := buildIstiod(); return err }},
	} {
		start := time.Now()
		err := b.build()
		fmt.Fprintf(log, "%s: %s (%v)\n", b.name, time.Since(start).Round(time.Second), err)
		if err != nil && first == nil {
			first = fmt.Errorf("%s: %w", b.name, err)
		}
	}
	return first
}

// buildTool builds the commands pkgs of the tools module lab/translators/<name> into
// $CANARYFLOW_CACHE/lab/translators/<name>/bin/ and returns that directory, unless the stamp (version and the
// hash of the tools module's go.mod, go.sum and Go files) says that is done; env adds to the go command's environment. An
// exclusive lock makes concurrent test processes build it once; the build log stays beside the binaries.
func buildTool(name, version string, pkgs []string, env ...string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	src := filepath.Join(root, "lab", "translators", name)
	share := filepath.Join(labbin.CacheDir(), "lab", "translators", name)
	bin := filepath.Join(share, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return "", err
	}
	lock, err := lockFile(filepath.Join(share, "build.lock"), syscall.LOCK_EX)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	// go.mod and go.sum, then any source of our own in the tools module (such as istio's xdsdump).
	files := []string{"go.mod", "go.sum"}
	err = filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".go") {
			rel, _ := filepath.Rel(src, path)
			files = append(files, rel)
		}
		return err
	})
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return "", err
		}
		h.Write(b)
	}
	stamp := version + " " + hex.EncodeToString(h.Sum(nil)) + "\n"
	stampPath := filepath.Join(share, "stamp")
	if old, err := os.ReadFile(stampPath); err == nil && string(old) == stamp {
		return bin, nil
	}
	logPath := filepath.Join(share, "build.log")
	tmp := filepath.Join(share, "bin.tmp")
	if err := os.RemoveAll(tmp); err != nil {
		return "", err
	}
	var out bytes.Buffer
	// Ten steps below the caller's CPU priority: the lab tests running meanwhile measure latencies and timings,
	// which a compile beside them at the same priority would skew.
	cmd := exec.Command("nice", append([]string{"-n", "10", "go", "build", "-ldflags", "-s -w", "-o", tmp + "/"}, pkgs...)...)
	cmd.Dir = src
	cmd.Env = append(append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly"), env...)
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	fmt.Fprintf(&out, "go build %v: %s (%v)\n", pkgs, time.Since(start).Round(time.Second), err)
	_ = os.WriteFile(logPath, out.Bytes(), 0o644)
	if err != nil {
		return "", fmt.Errorf("go build %v in %s: %w (log %s)", pkgs, src, err, logPath)
	}
	if err := os.RemoveAll(bin); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", err
	}
	return bin, os.WriteFile(stampPath, []byte(stamp), 0o644)
}
