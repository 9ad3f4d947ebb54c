package v1beta1

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
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
	f.Add([]byte(strings.Replace(good, goodRange, "        compare: {direction: either, confidence: 0.99, step: 10s}\n", 1)))
	f.Add([]byte("{\"apiVersion\":\"flagger.app/v1beta1\",\"kind\":\"List\",\"items\":[{}]}"))
	f.Add([]byte("---\n---\nkind: Canary\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := Load(bytes.NewReader(data), "fuzz", ValidateOptions{Capabilities: designCaps})
		if err != nil {
			return
		}
		for _, d := range set.Documents {
			again, err := reloadFromJSON(d)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(again, d) {
				t.Fatalf("round trip changed the document:\nbefore %+v\nafter  %+v", d, again)
			}
		}
	})
}
