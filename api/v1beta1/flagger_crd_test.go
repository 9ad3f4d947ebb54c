package v1beta1

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// sharedEnv names the directory holding the project's shared files (crds/flagger/crd.yaml); without it the test
// looks for a "shared" directory beside each directory above this package (the repository's ../shared).
const sharedEnv = "CANARYFLOW_SHARED"

const flaggerCRD = "crds/flagger/crd.yaml"

// findFlaggerCRD returns the path of Flagger's CRD file, or skips the test saying what is missing and where it
// was looked for.
func findFlaggerCRD(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv(sharedEnv); dir != "" {
		p := filepath.Join(dir, flaggerCRD)
		if _, err := os.Stat(p); err != nil {
			t.Skipf("Flagger's CRD %s is missing (%s=%s): %v", p, sharedEnv, dir, err)
		}
		return p
	}
	wd, err := os.Getwd()
	require.NoError(t, err)
	var tried []string
	for dir := wd; ; dir = filepath.Dir(dir) {
		p := filepath.Join(dir, "shared", flaggerCRD)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		tried = append(tried, p)
		if filepath.Dir(dir) == dir {
			break
		}
	}
	t.Skipf("Flagger's CRD (shared/%s, v1.44.0) is missing: looked for %s; set %s to the shared directory",
		flaggerCRD, strings.Join(tried, ", "), sharedEnv)
	return ""
}

// schema is the part of an OpenAPI v3 schema the walk needs.
type schema struct {
	Type                 string             `json:"type"`
	Format               string             `json:"format"`
	Enum                 []any              `json:"enum"`
	Properties           map[string]*schema `json:"properties"`
	Items                *schema            `json:"items"`
	AdditionalProperties *schema            `json:"additionalProperties"`
	IntOrString          bool               `json:"x-kubernetes-int-or-string"`
}

type crdFile struct {
	Spec struct {
		Names    struct{ Kind string } `json:"names"`
		Versions []struct {
			Name   string `json:"name"`
			Schema struct {
				OpenAPIV3Schema *schema `json:"openAPIV3Schema"`
			} `json:"schema"`
		} `json:"versions"`
	} `json:"spec"`
}

// A step of a field path: a property name, "[]" (an item of a list) or "{}" (a value of a map).
const (
	itemStep  = "[]"
	valueStep = "{}"
	// mapKey is the key used for a map value in generated documents.
	mapKey = "k"
)

// fieldPath is one leaf of a schema: the steps that reach it and a value of its type.
type fieldPath struct {
	steps []string
	value any
}

func (f fieldPath) String() string {
	var b strings.Builder
	for _, s := range f.steps {
		if s != itemStep && s != valueStep {
			b.WriteString(".")
		}
		b.WriteString(s)
	}
	return strings.TrimPrefix(b.String(), ".")
}

// leaves walks properties, items and additionalProperties down to every leaf field of s.
func leaves(s *schema, steps []string, out *[]fieldPath) {
	switch {
	case len(s.Properties) > 0:
		names := make([]string, 0, len(s.Properties))
		for n := range s.Properties {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			leaves(s.Properties[n], append(append([]string(nil), steps...), n), out)
		}
	case s.Items != nil:
		leaves(s.Items, append(append([]string(nil), steps...), itemStep), out)
	case s.AdditionalProperties != nil:
		leaves(s.AdditionalProperties, append(append([]string(nil), steps...), valueStep), out)
	default:
		*out = append(*out, fieldPath{steps: steps, value: sample(s)})
	}
}

// sample is a value of the schema's type that survives a JSON round trip (no zero values, which omitempty
// drops).
func sample(s *schema) any {
	for _, e := range s.Enum {
		if e != "" {
			return e
		}
	}
	switch {
	case s.IntOrString:
		return 8080.0
	case s.Type == "string" && s.Format == "date-time":
		return "2025-01-02T03:04:05Z"
	case s.Type == "string":
		return "x"
	case s.Type == "integer", s.Type == "number":
		return 3.0
	case s.Type == "boolean":
		return true
	}
	return map[string]any{} // an object without properties (metadata)
}

// document builds a document of kind holding only the field f.
func document(kind string, f fieldPath) map[string]any {
	doc := map[string]any{"apiVersion": APIVersion, "kind": kind, "metadata": map[string]any{"name": "x"}}
	var build func(steps []string) any
	build = func(steps []string) any {
		if len(steps) == 0 {
			return f.value
		}
		switch steps[0] {
		case itemStep:
			return []any{build(steps[1:])}
		case valueStep:
			return map[string]any{mapKey: build(steps[1:])}
		}
		return map[string]any{steps[0]: build(steps[1:])}
	}
	for k, v := range build(f.steps).(map[string]any) {
		if m, ok := v.(map[string]any); ok && k == "metadata" {
			for mk, mv := range m {
				doc["metadata"].(map[string]any)[mk] = mv
			}
			continue
		}
		doc[k] = v
	}
	return doc
}

// lookup follows f's steps through a decoded JSON value.
func lookup(v any, steps []string) (any, bool) {
	for _, s := range steps {
		switch s {
		case itemStep:
			l, ok := v.([]any)
			if !ok || len(l) == 0 {
				return nil, false
			}
			v = l[0]
		case valueStep:
			s = mapKey
			fallthrough
		default:
			m, ok := v.(map[string]any)
			if !ok {
				return nil, false
			}
			if v, ok = m[s]; !ok {
				return nil, false
			}
		}
	}
	return v, true
}

// Every field of Flagger's current CRD (Canary, MetricTemplate, AlertProvider) is accepted by the strict loader
// with a value of the schema's type and kept: the list is generated from the CRD's openAPIV3Schema, so a field
// Flagger adds later fails here until canaryflow's types have it.
func TestEveryFieldOfFlaggersCRDIsAcceptedAndKept(t *testing.T) {
	path := findFlaggerCRD(t)
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	kinds := map[string]int{}
	for {
		doc, err := reader.Read()
		if err != nil {
			break
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		var crd crdFile
		require.NoError(t, yaml.Unmarshal(doc, &crd))
		kind := crd.Spec.Names.Kind
		for _, v := range crd.Spec.Versions {
			require.Equal(t, Version, v.Name, "%s: canaryflow reads flagger.app/%s only", kind, Version)
			var fields []fieldPath
			leaves(v.Schema.OpenAPIV3Schema, nil, &fields)
			kinds[kind] += len(fields)
			for _, f := range fields {
				// The type header has one right value for this kind.
				switch f.String() {
				case "apiVersion":
					f.value = APIVersion
				case "kind":
					f.value = kind
				}
				t.Run(kind+"/"+f.String(), func(t *testing.T) {
					js, err := json.Marshal(document(kind, f))
					require.NoError(t, err)
					docs, errs := decodeObject(js, "crd")
					require.Empty(t, errs, "Flagger's field %s is refused:\n%s", f, errs)
					require.Len(t, docs, 1)
					obj := any(docs[0].Canary)
					if docs[0].MetricTemplate != nil {
						obj = docs[0].MetricTemplate
					} else if docs[0].AlertProvider != nil {
						obj = docs[0].AlertProvider
					}
					out, err := json.Marshal(obj)
					require.NoError(t, err)
					var back any
					require.NoError(t, json.Unmarshal(out, &back))
					if m, ok := f.value.(map[string]any); ok && len(m) == 0 {
						return // an empty object is dropped by omitempty, which is fine
					}
					got, ok := lookup(back, f.steps)
					require.True(t, ok, "Flagger's field %s is accepted but dropped:\n%s", f, out)
					require.Equal(t, f.value, got, "Flagger's field %s does not keep its value", f)
				})
			}
		}
	}
	// The walk really read the three kinds (guards against a CRD file the walk cannot parse).
	require.Greater(t, kinds[CanaryKind], 200, "Canary leaf fields")
	require.Greater(t, kinds[MetricTemplateKind], 5, "MetricTemplate leaf fields")
	require.Greater(t, kinds[AlertProviderKind], 5, "AlertProvider leaf fields")
	t.Logf("fields checked: %v", kinds)
}
