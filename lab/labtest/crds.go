package labtest

import (
	"bytes"
	"context"
	"os"
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
