package labtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/canaryflow/canaryflow/lab/labbin"
)

// APISIXVersion is the apisix-ingress-controller the lab builds from lab/translators/apisix (its go.mod pins it).
const APISIXVersion = "v1.8.4"

// APISIXTranslator is a running apisix-ingress-controller in its embedded etcd-server mode: it watches the lab's
// API server (ApisixRoutes, Services, Endpoints) and serves, as an etcd v3 server, the routes and upstreams an
// APISIX data plane would load. There is no APISIX here (it needs OpenResty), so what it serves is the proof of
// what our objects mean to APISIX.
type APISIXTranslator struct {
	// EtcdURL is the base URL of its etcd v3 JSON gateway, the API APISIX itself reads.
	EtcdURL string
	// Prefix is the etcd key prefix (APISIX's etcd.prefix).
	Prefix string
	log    string
}

// APISIX installs the APISIX CRDs (ApisixRoute and ApisixUpstream from ../shared/crds/apisix, which the routers'
// objects must pass; the controller's other CRDs from its module), builds the controller once into the lab cache
// if needed, starts it for this test on free loopback ports and stops it at the end. The test is skipped when
// ../shared/crds/apisix is absent.
func APISIX(t testing.TB) *APISIXTranslator {
	t.Helper()
	shared := SharedCRDs(t, "apisix")
	env := Lab(t)
	bin, share, err := buildAPISIX()
	if err != nil {
		t.Fatalf("labtest: building apisix-ingress-controller: %v", err)
	}
	// The controller's informers need every CRD it watches; ours come from ../shared (the newest schema).
	own := map[string]bool{}
	for _, f := range shared {
		own[strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "apisix.apache.org_"), ".yaml")] = true
	}
	files := append([]string{}, shared...)
	mod, _ := filepath.Glob(filepath.Join(share, "crds", "Apisix*.yaml"))
	for _, f := range mod {
		if !own[strings.ToLower(strings.TrimSuffix(filepath.Base(f), ".yaml"))+"s"] {
			files = append(files, f)
		}
	}
	CRDs(t, files...)
	ns := Namespace(t, "apisix-ctl")

	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "conf"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The controller validates every plugin against APISIX's schema, read from conf/ in its working directory.
	if err := os.Symlink(filepath.Join(share, "conf", "apisix-schema.json"), filepath.Join(dir, "conf", "apisix-schema.json")); err != nil {
		t.Fatal(err)
	}
	// Its health check of the APISIX admin API is a TCP connect; without an answer it stops translating.
	admin := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, _ *http.Request) {}))
	t.Cleanup(admin.Close)
	etcdAddr, httpAddr := freeAddr(t), freeAddr(t)
	cfg := map[string]any{
		"log_level": "info", "http_listen": httpAddr, "https_listen": freeAddr(t), "enable_profiling": false,
		"apisix_resource_sync_interval": "1h",
		"kubernetes": map[string]any{
			"kubeconfig": env.Kubeconfig, "resync_interval": "6h", "namespace_selector": []string{""},
			"election_id": "apisix-" + ns, "ingress_class": "apisix-and-all", "ingress_version": "networking/v1",
			"api_version": "apisix.apache.org/v2", "disable_status_updates": true,
		},
		"etcdserver": map[string]any{"enabled": true, "listen_address": etcdAddr, "prefix": "/apisix"},
		"apisix":     map[string]any{"admin_api_version": "v3", "default_cluster_base_url": admin.URL + "/apisix/admin", "default_cluster_name": "default"},
	}
	raw, _ := json.Marshal(cfg)
	cfgPath := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfgPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	a := &APISIXTranslator{EtcdURL: "http://" + etcdAddr, Prefix: "/apisix", log: filepath.Join(dir, "controller.log")}
	logf, err := os.Create(a.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "ingress", "--config-path", cfgPath)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "POD_NAME=apisix-ingress-controller-0", "POD_NAMESPACE="+ns)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("labtest: starting apisix-ingress-controller: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		_ = logf.Close()
		if t.Failed() {
			t.Logf("apisix-ingress-controller log (last lines):\n%s", a.LogTail(40))
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := a.list(ctx, "routes")
		cancel()
		if err == nil {
			return a
		}
		select {
		case <-done:
			t.Fatalf("labtest: apisix-ingress-controller exited:\n%s", a.LogTail(40))
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("labtest: apisix-ingress-controller serves no etcd at %s within 60s (%v):\n%s", etcdAddr, err, a.LogTail(40))
		}
	}
}

// Routes returns the APISIX routes the controller serves, by name (<namespace>_<ApisixRoute>_<rule>).
func (a *APISIXTranslator) Routes(ctx context.Context) (map[string]map[string]any, error) {
	return a.byField(ctx, "routes", "name")
}

// Upstreams returns the APISIX upstreams the controller serves, by id.
func (a *APISIXTranslator) Upstreams(ctx context.Context) (map[string]map[string]any, error) {
	return a.byField(ctx, "upstreams", "id")
}

// LogTail returns the last n lines of the controller's log.
func (a *APISIXTranslator) LogTail(n int) string {
	b, _ := os.ReadFile(a.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (a *APISIXTranslator) byField(ctx context.Context, kind, field string) (map[string]map[string]any, error) {
	objs, err := a.list(ctx, kind)
	if err != nil {
		return nil, err
	}
	out := make(map[string]map[string]any, len(objs))
	for _, o := range objs {
		out[fmt.Sprint(o[field])] = o
	}
	return out, nil
}

// list reads every object under <prefix>/<kind>/ through the etcd v3 JSON gateway, as APISIX does.
func (a *APISIXTranslator) list(ctx context.Context, kind string) ([]map[string]any, error) {
	key := a.Prefix + "/" + kind + "/"
	end := a.Prefix + "/" + kind + "0" // the first key after every key with that prefix
	body, _ := json.Marshal(map[string]string{
		"key": base64.StdEncoding.EncodeToString([]byte(key)), "range_end": base64.StdEncoding.EncodeToString([]byte(end)),
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.EtcdURL+"/v3/kv/range", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("etcd range %s: %s: %s", key, resp.Status, raw)
	}
	var r struct {
		KVs []struct{ Key, Value string } `json:"kvs"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("etcd range %s: %w", key, err)
	}
	var out []map[string]any
	for _, kv := range r.KVs {
		v, err := base64.StdEncoding.DecodeString(kv.Value)
		if err != nil {
			return nil, err
		}
		var o map[string]any
		if len(bytes.TrimSpace(v)) == 0 || json.Unmarshal(v, &o) != nil || o == nil {
			continue // the directory marker APISIX's etcd layout keeps under each prefix
		}
		out = append(out, o)
	}
	return out, nil
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// buildAPISIX builds the controller from the tools module lab/translators/apisix into
// $CANARYFLOW_CACHE/lab/translators/apisix, with APISIX's plugin schema and the controller's CRDs from its module,
// unless the stamp (version and hash of the tools module's go.mod and go.sum) says that is done. An exclusive
// lock makes concurrent test processes build it once.
func buildAPISIX() (bin, share string, err error) {
	root, err := RepoRoot()
	if err != nil {
		return "", "", err
	}
	src := filepath.Join(root, "lab", "translators", "apisix")
	share = filepath.Join(labbin.CacheDir(), "lab", "translators", "apisix")
	bin = filepath.Join(share, "bin", "apisix-ingress-controller")
	if err := os.MkdirAll(filepath.Join(share, "bin"), 0o755); err != nil {
		return "", "", err
	}
	lock, err := lockFile(filepath.Join(share, "build.lock"), syscall.LOCK_EX)
	if err != nil {
		return "", "", err
	}
	defer lock.Close()

	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return "", "", err
		}
		h.Write(b)
	}
	stamp := APISIXVersion + " " + hex.EncodeToString(h.Sum(nil)) + "\n"
	stampPath := filepath.Join(share, "stamp")
	if old, err := os.ReadFile(stampPath); err == nil && string(old) == stamp {
		if _, err := os.Stat(bin); err == nil {
			return bin, share, nil
		}
	}
	logPath := filepath.Join(share, "build.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return "", "", err
	}
	defer logf.Close()
	run := func(name string, args ...string) (string, error) {
		var out bytes.Buffer
		cmd := exec.Command(name, args...)
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
		cmd.Stdout, cmd.Stderr = io.MultiWriter(&out, logf), logf
		start := time.Now()
		err := cmd.Run()
		fmt.Fprintf(logf, "%s %s: %s (%v)\n", name, strings.Join(args, " "), time.Since(start).Round(time.Second), err)
		if err != nil {
			return "", fmt.Errorf("%s %s in %s: %w (log %s)", name, strings.Join(args, " "), src, err, logPath)
		}
		return strings.TrimSpace(out.String()), nil
	}
	if _, err := run("go", "build", "-o", bin, "github.com/apache/apisix-ingress-controller"); err != nil {
		return "", "", err
	}
	mod, err := run("go", "list", "-m", "-f", "{{.Dir}}", "github.com/apache/apisix-ingress-controller")
	if err != nil {
		return "", "", err
	}
	copies := map[string]string{filepath.Join(mod, "conf", "apisix-schema.json"): filepath.Join(share, "conf", "apisix-schema.json")}
	crds, _ := filepath.Glob(filepath.Join(mod, "samples", "deploy", "crd", "v1", "Apisix*.yaml"))
	for _, f := range crds {
		copies[f] = filepath.Join(share, "crds", filepath.Base(f))
	}
	if len(crds) == 0 {
		return "", "", errors.New("no CRDs under samples/deploy/crd/v1 of " + mod)
	}
	for from, to := range copies {
		b, err := os.ReadFile(from)
		if err != nil {
			return "", "", err
		}
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return "", "", err
		}
		if err := os.WriteFile(to, b, 0o644); err != nil {
			return "", "", err
		}
	}
	return bin, share, os.WriteFile(stampPath, []byte(stamp), 0o644)
}
