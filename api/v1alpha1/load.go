package v1alpha1

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/canaryflow/canaryflow/api/v1beta1"
)

// LoadFile reads path ("-" for standard input) and loads it with Load.
func LoadFile(path string, opts v1beta1.ValidateOptions) (*Plan, []string, error) {
	var r io.Reader
	if path == "-" {
		r, path = os.Stdin, "<stdin>"
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, nil, fmt.Errorf("read release file: %w", err)
		}
		defer f.Close()
		r = f
	}
	return Load(r, path, opts)
}

// Load reads one Release and, in the same file ("---" separated), the MetricTemplates and AlertProviders its
// Canary references. It rejects unknown fields (naming the path and the closest known field), checks the waves
// (no empty wave, each cluster once), and loads every cluster's Canary (spec.canary with the cluster's
// canaryPatch) with v1beta1.Load, so a Canary problem names the cluster. Every problem is returned at once as a
// v1beta1.ErrorList before anything starts; warnings are v1beta1's (Flagger fields not honoured, raised
// intervals).
func Load(r io.Reader, source string, opts v1beta1.ValidateOptions) (*Plan, []string, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReaderSize(r, 64<<10))
	var release *Release
	var releaseDoc string
	var generic any
	var others [][]byte
	var problems v1beta1.ErrorList
	for n := 1; ; n++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, v1beta1.ErrorList{{Doc: source, Message: "cannot read YAML: " + err.Error()}}
		}
		js, err := yaml.YAMLToJSON(raw)
		if err != nil {
			problems = append(problems, v1beta1.FieldError{Doc: fmt.Sprintf("%s#%d", source, n), Message: "not valid YAML or JSON: " + err.Error()})
			continue
		}
		if len(bytes.TrimSpace(js)) == 0 || string(bytes.TrimSpace(js)) == "null" {
			n--
			continue
		}
		var head struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		_ = json.Unmarshal(js, &head) // a document that is no object fails below, in its own loader
		if head.Kind != ReleaseKind {
			others = append(others, js)
			continue
		}
		doc := fmt.Sprintf("%s#%d Release %s", source, n, head.Metadata.Name)
		if release != nil {
			problems = append(problems, v1beta1.FieldError{Doc: doc, Message: "a file holds one Release: " + releaseDoc + " is the first"})
			continue
		}
		release, releaseDoc = &Release{}, doc
		if err := json.Unmarshal(js, &generic); err != nil {
			problems = append(problems, v1beta1.FieldError{Doc: doc, Message: "invalid JSON: " + err.Error()})
			continue
		}
		if l := v1beta1.CheckUnknownFields(generic, release, doc, ""); len(l) > 0 {
			problems = append(problems, l...)
			continue
		}
		if err := json.Unmarshal(js, release); err != nil {
			problems = append(problems, v1beta1.FieldError{Doc: doc, Message: err.Error()})
		}
	}
	if release == nil && len(problems) == 0 {
		problems = append(problems, v1beta1.FieldError{Doc: source,
			Message: "no Release found: expected a document with apiVersion: " + APIVersion + " and kind: " + ReleaseKind})
	}
	if len(problems) > 0 {
		return nil, nil, problems
	}
	if l := release.validate(releaseDoc); len(l) > 0 {
		return nil, nil, l
	}
	plan, warnings, l := release.resolve(releaseDoc, others, opts)
	if len(l) > 0 {
		return nil, nil, l
	}
	return plan, warnings, nil
}

func asList(err error, out *v1beta1.ErrorList) bool { return errors.As(err, out) }
