package metrics

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Prometheus, which RangeBackends names, reads series; the other backends built here from a plain config do not:
// validation refuses compare on them by this list.
func TestRangeBackendsAreExactlyTheRangeQueriers(t *testing.T) {
	cfgs := map[string]Config{
		"prometheus": {Address: "http://127.0.0.1:9"},
		"datadog":    {HasSecret: true, Credentials: map[string][]byte{"datadog_api_key": []byte("a"), "datadog_application_key": []byte("b")}},
		"newrelic":   {HasSecret: true, Credentials: map[string][]byte{"newrelic_account_id": []byte("1"), "newrelic_query_key": []byte("k")}},
		"graphite":   {Address: "http://127.0.0.1:9"},
	}
	var got []string
	for _, name := range Backends() {
		cfg, ok := cfgs[name]
		if !ok {
			continue
		}
		cfg.Type = name
		p, err := New(cfg)
		require.NoError(t, err, name)
		if _, ok := p.(RangeQuerier); ok {
			got = append(got, name)
		}
	}
	require.Equal(t, RangeBackends(), got)
}
