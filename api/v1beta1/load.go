package v1beta1

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Document is one loaded object, in file order.
type Document struct {
	// Source is "<file>#<n>" (n counts from 1; items of a List count on).
	Source string
	Kind   string
	// Exactly one of these is set, matching Kind.
	Canary         *Canary
	MetricTemplate *MetricTemplate
	AlertProvider  *AlertProvider
}

// Namespace returns the document's namespace.
func (d Document) Namespace() string {
	switch {
	case d.Canary != nil:
		return d.Canary.Namespace
	case d.MetricTemplate != nil:
		return d.MetricTemplate.Namespace
	case d.AlertProvider != nil:
		return d.AlertProvider.Namespace
	}
	return ""
}

// Name returns the document's name.
func (d Document) Name() string {
	switch {
	case d.Canary != nil:
		return d.Canary.Name
	case d.MetricTemplate != nil:
		return d.MetricTemplate.Name
	case d.AlertProvider != nil:
		return d.AlertProvider.Name
	}
	return ""
}

// Label is "<source> <Kind> <namespace>/<name>", how errors name a document.
func (d Document) Label() string {
	return fmt.Sprintf("%s %s %s/%s", d.Source, d.Kind, d.Namespace(), d.Name())
}

// Set is everything loaded from one or more sources.
type Set struct {
	Documents []Document
	// Warnings are values loading changed from what was written (deprecated fields, clamped intervals) and
	// fields this build accepts but ignores (see Canary.NotHonoured).
	Warnings []string
}

// Canaries returns the loaded Canaries in file order.
func (s *Set) Canaries() []*Canary {
	var out []*Canary
	for _, d := range s.Documents {
		if d.Canary != nil {
			out = append(out, d.Canary)
		}
	}
	return out
}

// MetricTemplates returns the loaded MetricTemplates in file order.
func (s *Set) MetricTemplates() []MetricTemplate {
	var out []MetricTemplate
	for _, d := range s.Documents {
		if d.MetricTemplate != nil {
			out = append(out, *d.MetricTemplate)
		}
	}
	return out
}

// AlertProviders returns the loaded AlertProviders in file order.
func (s *Set) AlertProviders() []AlertProvider {
	var out []AlertProvider
	for _, d := range s.Documents {
		if d.AlertProvider != nil {
			out = append(out, *d.AlertProvider)
		}
	}
	return out
}

// LoadFile reads path ("-" for standard input) and loads it with Load.
func LoadFile(path string, opts ValidateOptions) (*Set, error) {
	var r io.Reader
	if path == "-" {
		r, path = os.Stdin, "<stdin>"
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("read canary file: %w", err)
		}
		defer f.Close()
		r = f
	}
	return Load(r, path, opts)
}

// maxDocumentBytes bounds one document, so a hostile input cannot make the loader allocate without limit.
const maxDocumentBytes = 4 << 20

// Load parses one or many YAML or JSON documents ("---" separated; a kind List is unpacked) of the kinds Canary,
// MetricTemplate and AlertProvider in any order, rejects unknown fields (naming the path and the closest known
// field), applies Flagger's defaults and validates every document, returning every problem at once as an
// ErrorList. Nothing is returned half-loaded: on error the Set is nil.
func Load(r io.Reader, source string, opts ValidateOptions) (*Set, error) {
	set := &Set{}
	var problems ErrorList
	reader := utilyaml.NewYAMLReader(bufio.NewReaderSize(r, 64<<10))
	n := 0
	for {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			problems = append(problems, FieldError{Doc: source, Message: "cannot read YAML: " + err.Error()})
			break
		}
		if len(bytes.TrimSpace(stripComments(raw))) == 0 {
			continue
		}
		n++
		if len(raw) > maxDocumentBytes {
			problems = append(problems, FieldError{Doc: fmt.Sprintf("%s#%d", source, n),
				Message: fmt.Sprintf("document is larger than %d bytes", maxDocumentBytes)})
			continue
		}
		docs, errs := decodeDocument(raw, fmt.Sprintf("%s#%d", source, n))
		problems = append(problems, errs...)
		set.Documents = append(set.Documents, docs...)
	}
	if n == 0 && len(problems) == 0 {
		problems = append(problems, FieldError{Doc: source,
			Message: "no documents found: expected a Canary, MetricTemplate or AlertProvider"})
	}
	if len(problems) > 0 {
		return nil, problems
	}
	for _, d := range set.Documents {
		if d.Canary != nil {
			for _, w := range append(d.Canary.SetDefaults(), d.Canary.NotHonoured(opts.Capabilities)...) {
				set.Warnings = append(set.Warnings, d.Label()+": "+w)
			}
		}
		if d.MetricTemplate != nil {
			d.MetricTemplate.SetDefaults()
			for _, w := range d.MetricTemplate.NotHonoured() {
				set.Warnings = append(set.Warnings, d.Label()+": "+w)
			}
		}
		if d.AlertProvider != nil {
			d.AlertProvider.SetDefaults()
		}
	}
	if errs := set.Validate(opts); len(errs) > 0 {
		return nil, errs
	}
	return set, nil
}

func stripComments(raw []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(raw, []byte("\n")) {
		t := bytes.TrimSpace(line)
		if len(t) == 0 || t[0] == '#' {
			continue
		}
		out = append(out, line...)
		out = append(out, '\n')
	}
	return out
}

type typeHeader struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Items      []json.RawMessage `json:"items"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

// decodeDocument turns one YAML/JSON document into typed objects, strictly.
func decodeDocument(raw []byte, source string) ([]Document, ErrorList) {
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return nil, ErrorList{{Doc: source, Message: "not valid YAML or JSON: " + err.Error()}}
	}
	var head typeHeader
	if err := json.Unmarshal(js, &head); err != nil {
		return nil, ErrorList{{Doc: source, Message: "expected an object with apiVersion and kind: " + err.Error()}}
	}
	if head.Kind == "List" {
		var docs []Document
		var problems ErrorList
		for i, item := range head.Items {
			d, errs := decodeObject(item, fmt.Sprintf("%s.items[%d]", source, i))
			problems = append(problems, errs...)
			docs = append(docs, d...)
		}
		return docs, problems
	}
	return decodeObject(js, source)
}

func decodeObject(js []byte, source string) ([]Document, ErrorList) {
	var head typeHeader
	if err := json.Unmarshal(js, &head); err != nil {
		return nil, ErrorList{{Doc: source, Message: "expected an object with apiVersion and kind: " + err.Error()}}
	}
	label := fmt.Sprintf("%s %s %s/%s", source, head.Kind, orDefault(head.Metadata.Namespace), head.Metadata.Name)
	e := &errs{doc: label}
	if head.APIVersion != APIVersion {
		if head.APIVersion == "" {
			e.add("apiVersion", "required: set apiVersion: %s", APIVersion)
		} else {
			e.add("apiVersion", "%q is not supported: use %s", head.APIVersion, APIVersion)
		}
	}
	var target any
	doc := Document{Source: source, Kind: head.Kind}
	switch head.Kind {
	case CanaryKind:
		doc.Canary = &Canary{}
		target = doc.Canary
	case MetricTemplateKind:
		doc.MetricTemplate = &MetricTemplate{}
		target = doc.MetricTemplate
	case AlertProviderKind:
		doc.AlertProvider = &AlertProvider{}
		target = doc.AlertProvider
	case "":
		e.add("kind", "required: set kind to Canary, MetricTemplate or AlertProvider")
		return nil, e.list
	default:
		e.add("kind", "%q is not a canaryflow kind: use Canary, MetricTemplate or AlertProvider", head.Kind)
		return nil, e.list
	}
	var generic any
	if err := json.Unmarshal(js, &generic); err != nil {
		e.add("", "invalid JSON: %v", err)
		return nil, e.list
	}
	checkUnknown(generic, typeOf(target), "", e)
	if err := json.Unmarshal(js, target); err != nil && len(e.list) == 0 {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			e.add(te.Field, "expected %s, got a JSON %s", describeType(te.Type.String()), te.Value)
		} else {
			e.add("", "%s", strings.TrimPrefix(err.Error(), "json: "))
		}
	}
	if head.Metadata.Name == "" {
		e.add("metadata.name", "required: name the %s", head.Kind)
	}
	if len(e.list) > 0 {
		return nil, e.list
	}
	return []Document{doc}, nil
}

func orDefault(ns string) string {
	if ns == "" {
		return DefaultNamespace
	}
	return ns
}

func describeType(goType string) string {
	switch {
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "a whole number"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["):
		return "a mapping"
	default:
		return "an object"
	}
}
