package metrics

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// New Relic's Insights query API (GET /v1/accounts/<id>/query?nrql=…, X-Query-Key) and the Secret keys Flagger uses.
const (
	NewRelicDefaultAddress = "https://insights-api.newrelic.com"
	NewRelicAccountIDKey   = "newrelic_account_id"
	NewRelicQueryKeyKey    = "newrelic_query_key"
)

// NewRelic runs NRQL queries through the Insights query API.
type NewRelic struct {
	cfg       Config
	address   string
	accountID string
	queryKey  string
}

// NewNewRelic builds a New Relic provider; the Secret must hold newrelic_account_id and newrelic_query_key.
func NewNewRelic(cfg Config) (*NewRelic, error) {
	addr, err := backendAddress(cfg, "newrelic", NewRelicDefaultAddress)
	if err != nil {
		return nil, err
	}
	id, err := requireKey(cfg, "newrelic", NewRelicAccountIDKey)
	if err != nil {
		return nil, err
	}
	key, err := requireKey(cfg, "newrelic", NewRelicQueryKeyKey)
	if err != nil {
		return nil, err
	}
	return &NewRelic{cfg: cfg, address: addr, accountID: id, queryKey: key}, nil
}

// RunQuery appends "SINCE <interval> seconds ago" to the NRQL (as Flagger does) and returns the single value of
// the first result: its "result" field (arithmetic queries) or, failing that, its one numeric field, looking
// one level into objects (percentile answers {"percentiles": {"99": v}}).
func (n *NewRelic) RunQuery(ctx context.Context, query string) (float64, error) {
	nrql := fmt.Sprintf("%s SINCE %d seconds ago", strings.TrimSpace(query), int64(n.cfg.interval().Seconds()))
	u := n.address + "/v1/accounts/" + url.PathEscape(n.accountID) + "/query?" + url.Values{"nrql": {nrql}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, fmt.Errorf("newrelic request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Query-Key", n.queryKey)
	resp, err := n.cfg.client().Do(req)
	if err != nil {
		return 0, fmt.Errorf("newrelic %s: %w", RedactURL(n.address), redactErr(err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode != http.StatusOK {
		return 0, statusError("newrelic "+RedactURL(n.address), resp.StatusCode, body)
	}
	var r struct {
		Results []map[string]any `json:"results"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, fmt.Errorf("newrelic %s: decoding response: %w", RedactURL(n.address), err)
	}
	if len(r.Results) == 0 {
		return 0, ErrNoValues
	}
	if v, ok := r.Results[0]["result"].(float64); ok {
		return v, nil
	}
	if v, ok := singleNumber(r.Results[0], 1); ok {
		return v, nil
	}
	return 0, ErrNoValues
}

func singleNumber(m map[string]any, depth int) (float64, bool) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var found []float64
	for _, k := range keys {
		switch v := m[k].(type) {
		case float64:
			found = append(found, v)
		case map[string]any:
			if depth > 0 {
				if f, ok := singleNumber(v, depth-1); ok {
					found = append(found, f)
				}
			}
		}
	}
	if len(found) != 1 {
		return 0, false
	}
	return found[0], true
}
