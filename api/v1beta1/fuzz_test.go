package v1beta1

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzLoad feeds the loader arbitrary bytes: it must never panic, and whatever it accepts must survive the trip
// to JSON (the workflow input) and back unchanged.
func FuzzLoad(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "flagger", "*.yaml"))
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(good))
	f.Add([]byte("{\"apiVersion\":\"flagger.app/v1beta1\",\"kind\":\"List\",\"items\":[{}]}"))
	f.Add([]byte("---\n---\nkind: Canary\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := Load(bytes.NewReader(data), "fuzz", ValidateOptions{})
		if err != nil {
			return
		}
		for _, d := range set.Documents {
			var obj any = d.Canary
			switch {
			case d.MetricTemplate != nil:
				obj = d.MetricTemplate
			case d.AlertProvider != nil:
				obj = d.AlertProvider
			}
			js, err := json.Marshal(obj)
			if err != nil {
				t.Fatalf("accepted document does not marshal: %v", err)
			}
			again, err := Load(bytes.NewReader(js), "fuzz", ValidateOptions{})
			if err != nil {
				t.Fatalf("accepted document does not reload from JSON: %v\n%s", err, js)
			}
			got := again.Documents[0]
			got.Source = d.Source
			if !reflect.DeepEqual(got, d) {
				t.Fatalf("round trip changed the document:\nbefore %+v\nafter  %+v", d, got)
			}
		}
	})
}
