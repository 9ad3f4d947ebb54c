package labtest

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// SharedCRDs returns the upstream CRD files of a provider kept beside the repository in ../shared/crds/<provider>
// (see its README for their sources). When that directory is absent the test is skipped, naming it: the files are
// not served by the Go module proxy, so a checkout without them cannot run the test.
func SharedCRDs(t testing.TB, provider string) []string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatalf("labtest: %v", err)
	}
	dir := filepath.Join(filepath.Dir(root), "shared", "crds", provider)
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Skipf("labtest: no upstream %s CRDs at %s (the shared CRD directory beside the repository is missing)", provider, dir)
	}
	return files
}

// ModuleFile returns the path of a file inside a Go module version (module@version), downloaded into the module
// cache by the go command if it is not there yet; upstream CRDs ship in their projects' modules, so the module
// proxy is their source. The module is not added to go.mod.
func ModuleFile(t testing.TB, moduleAtVersion, file string) string {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", moduleAtVersion)
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	cmd.Dir = os.TempDir() // outside any module, so go.mod is left alone
	out, err := cmd.Output()
	var mod struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &mod); err != nil || jerr != nil || mod.Dir == "" {
		t.Fatalf("labtest: go mod download %s: %v %s %s", moduleAtVersion, err, mod.Error, out)
	}
	path := filepath.Join(mod.Dir, filepath.FromSlash(file))
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("labtest: %s has no %s: %v", moduleAtVersion, file, err)
	}
	return path
}

// CRDs installs (server-side apply) the CustomResourceDefinitions in files on the lab's API server and waits
// until each is established. They stay installed: other test processes may be using them.
func CRDs(t testing.TB, files ...string) {
	t.Helper()
	dc := Dynamic(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var names []string
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("labtest: %v", err)
		}
		for _, doc := range bytes.Split(raw, []byte("\n---")) {
			var obj map[string]any
			if err := yaml.Unmarshal(doc, &obj); err != nil {
				t.Fatalf("labtest: %s: %v", f, err)
			}
			if obj == nil {
				continue
			}
			u := &unstructured.Unstructured{Object: obj}
			if u.GetKind() != "CustomResourceDefinition" {
				t.Fatalf("labtest: %s holds a %s, not a CustomResourceDefinition", f, u.GetKind())
			}
			if _, err := dc.Resource(crdResource).Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: "canaryflow-labtest", Force: true}); err != nil {
				t.Fatalf("labtest: installing CRD %s from %s: %v", u.GetName(), f, err)
			}
			names = append(names, u.GetName())
		}
	}
	for _, name := range names {
		for {
			u, err := dc.Resource(crdResource).Get(ctx, name, metav1.GetOptions{})
			if err == nil && crdEstablished(u) {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("labtest: CRD %s not established within a minute (last error: %v)", name, err)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

func crdEstablished(u *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}
