package metrics

import (
	"fmt"
	"regexp"
	"strings"
	"text/template"
)

var nonWord = regexp.MustCompile(`\W`)

// skipperName turns a Kubernetes name into the form Skipper uses in route ids (non-word characters become "_").
func skipperName(s any) string {
	return nonWord.ReplaceAllString(fmt.Sprint(s), "_")
}

// Model is what a query template can name. Templates written for Flagger use the functions ({{ namespace }},
// {{ target }}, {{ variables.name }}); the same values are also the template's data ({{ .namespace }},
// {{ .variables.name }}).
type Model struct {
	Name      string
	Namespace string
	Target    string
	Service   string
	Ingress   string
	Route     string
	Interval  string
	Variables map[string]string
}

func (m Model) data() map[string]any {
	vars := m.Variables
	if vars == nil {
		vars = map[string]string{}
	}
	return map[string]any{
		"name": m.Name, "namespace": m.Namespace, "target": m.Target, "service": m.Service,
		"ingress": m.Ingress, "route": m.Route, "interval": m.Interval, "variables": vars,
	}
}

func (m Model) funcs() template.FuncMap {
	d := m.data()
	fm := template.FuncMap{"skipperName": skipperName}
	for k, v := range d {
		fm[k] = func() any { return v }
	}
	return fm
}

// Render executes query as a Go text/template over m. A key that is not there (a templateVariables entry the
// metric does not set, a misspelt field) is an error that names it, never an empty string in the query.
func Render(query string, m Model) (string, error) {
	t, err := template.New("query").Option("missingkey=error").Funcs(m.funcs()).Parse(query)
	if err != nil {
		return "", fmt.Errorf("parsing query template: %w", err)
	}
	var b strings.Builder
	if err := t.Execute(&b, m.data()); err != nil {
		return "", fmt.Errorf("rendering query template: %w", err)
	}
	return b.String(), nil
}
