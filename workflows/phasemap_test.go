package workflows

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/canaryflow/canaryflow/workflows/searchattr"
)

// phaseStart names, in the package doc's phase map, a fresh run before its first phase.
const phaseStart Phase = "start"

// transition is one edge of the phase map.
type transition struct{ From, To Phase }

func (tr transition) String() string { return string(tr.From) + " → " + string(tr.To) }

// The phase map of doc.go, parsed once, and the transitions the tests of this run took.
var (
	docMapOnce sync.Once
	docMap     map[transition]bool
	docMapErr  error

	takenMu sync.Mutex
	taken   = map[transition]bool{}
)

// documentedTransitions parses the map of the package doc: the lines "from → to | to | …".
func documentedTransitions() (map[transition]bool, error) {
	docMapOnce.Do(func() {
		f, err := parser.ParseFile(token.NewFileSet(), "doc.go", nil, parser.PackageClauseOnly|parser.ParseComments)
		if err != nil {
			docMapErr = err
			return
		}
		if f.Doc == nil {
			docMapErr = fmt.Errorf("doc.go has no package doc")
			return
		}
		docMap = map[transition]bool{}
		for _, line := range strings.Split(f.Doc.Text(), "\n") {
			from, tos, ok := strings.Cut(line, "→")
			if !ok {
				continue
			}
			for _, to := range strings.Split(tos, "|") {
				docMap[transition{Phase(strings.TrimSpace(from)), Phase(strings.TrimSpace(to))}] = true
			}
		}
		if len(docMap) == 0 {
			docMapErr = fmt.Errorf("doc.go: the package doc has no phase map (lines \"from → to | to\")")
		}
	})
	return docMap, docMapErr
}

// phaseTransitions turns the phases a run went through into transitions, from the phase it started in.
func phaseTransitions(from Phase, phases []Phase) []transition {
	if from == "" {
		from = phaseStart
	}
	var out []transition
	for _, p := range phases {
		if p != from { // a continued run upserts the phase it carried again
			out = append(out, transition{from, p})
		}
		from = p
	}
	return out
}

// checkTransitionsAreDocumented fails the scenario test when its run took a transition the package doc's phase map
// does not list, and records the ones it took for TestMain's report.
func (h *harness) checkTransitionsAreDocumented() {
	h.t.Helper()
	documented, err := documentedTransitions()
	if err != nil {
		h.t.Errorf("phase map: %v", err)
		return
	}
	for _, tr := range phaseTransitions(h.from, h.phases) {
		if !documented[tr] {
			h.t.Errorf("the run went %s (phases %v), which the phase map in doc.go does not list: add it there "+
				"with why it happens, or fix the code", tr, h.phases)
		}
		takenMu.Lock()
		taken[tr] = true
		takenMu.Unlock()
	}
}

// TestMain runs the tests, then, when all of them ran, lists the map's transitions that no test took (go test -v
// shows it): those are the ones nothing pins.
func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if code == 0 && flag.Lookup("test.run").Value.String() == "" {
		documented, err := documentedTransitions()
		if err == nil {
			var untaken []string
			for tr := range documented {
				if !taken[tr] {
					untaken = append(untaken, tr.String())
				}
			}
			slices.Sort(untaken)
			fmt.Printf("phase map: %d transitions, %d taken by the tests; never taken: %s\n",
				len(documented), len(documented)-len(untaken), strings.Join(untaken, ", "))
		}
	}
	os.Exit(code)
}

// phaseConstants are the Phase constants of types.go.
func phaseConstants(t *testing.T) []Phase {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "types.go", nil, 0)
	require.NoError(t, err)
	var out []Phase
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, s := range gd.Specs {
			vs := s.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Phase" {
				continue
			}
			for _, v := range vs.Values {
				lit := v.(*ast.BasicLit)
				out = append(out, Phase(strings.Trim(lit.Value, `"`)))
			}
		}
	}
	require.NotEmpty(t, out, "no Phase constants found in types.go")
	return out
}

// The map names only phases that exist, and the package doc names every phase.
func TestPhaseMapNamesEveryPhaseAndOnlyPhases(t *testing.T) {
	documented, err := documentedTransitions()
	require.NoError(t, err)
	phases := phaseConstants(t)
	for tr := range documented {
		require.Contains(t, append(phases, phaseStart), tr.From, "doc.go phase map, line of %s", tr.From)
		require.Contains(t, phases, tr.To, "doc.go phase map: %s", tr)
	}
	f, err := parser.ParseFile(token.NewFileSet(), "doc.go", nil, parser.PackageClauseOnly|parser.ParseComments)
	require.NoError(t, err)
	for _, p := range phases {
		require.Contains(t, f.Doc.Text(), string(p), "the package doc does not say where phase %s belongs", p)
	}
}

// The histories recorded on a dev server take only transitions of the map (their phases are the CanaryPhase
// search attribute upserts).
func TestRecordedHistoriesTakeOnlyDocumentedTransitions(t *testing.T) {
	documented, err := documentedTransitions()
	require.NoError(t, err)
	files, err := filepath.Glob(filepath.Join(historiesDir, "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	dc := converter.GetDefaultDataConverter()
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			f, err := os.Open(file)
			require.NoError(t, err)
			defer f.Close()
			hist, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
			require.NoError(t, err)
			var from Phase
			var phases []Phase
			for _, e := range hist.Events {
				if a := e.GetWorkflowExecutionStartedEventAttributes(); a != nil {
					if a.GetWorkflowType().GetName() == FinalizeWorkflowName {
						t.Skip("a finalisation (CanaryFinalize), not a rollout run: its phases are not the map's")
					}
					var in RolloutInput
					require.NoError(t, dc.FromPayloads(a.GetInput(), &in))
					if in.Status != nil {
						from = in.Status.Phase
					}
				}
				a := e.GetUpsertWorkflowSearchAttributesEventAttributes()
				if p, ok := a.GetSearchAttributes().GetIndexedFields()[searchattr.CanaryPhase.GetName()]; ok {
					var phase Phase
					require.NoError(t, dc.FromPayload(p, &phase))
					phases = append(phases, phase)
				}
			}
			require.NotEmpty(t, phases, "no phase recorded in %s", file)
			for _, tr := range phaseTransitions(from, phases) {
				require.True(t, documented[tr], "%s went %s (phases %v), which the phase map in doc.go does not list",
					filepath.Base(file), tr, phases)
				takenMu.Lock()
				taken[tr] = true
				takenMu.Unlock()
			}
		})
	}
}
