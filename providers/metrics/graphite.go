package metrics

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Graphite's Secret keys (optional: basic auth).
const (
	GraphiteUsernameKey = "username"
	GraphitePasswordKey = "password"
)

// Graphite runs render API queries: the query is the render URL's parameters ("target=…&from=-5min"), as in
// Flagger; format=json is added.
type Graphite struct {
	cfg      Config
	address  string
	username string
	password string
}

// NewGraphite builds a Graphite provider for cfg.Address.
func NewGraphite(cfg Config) (*Graphite, error) {
	addr, err := backendAddress(cfg, "graphite", "")
	if err != nil {
		return nil, err
	}
	g := &Graphite{cfg: cfg, address: addr}
	if cfg.HasSecret {
		if g.username, err = requireKey(cfg, "graphite", GraphiteUsernameKey); err != nil {
			return nil, err
		}
		if g.password, err = requireKey(cfg, "graphite", GraphitePasswordKey); err != nil {
			return nil, err
		}
	}
	return g, nil
}

type graphitePoint [2]*float64

// RunQuery returns the newest non-null datapoint of the answer (the last one found over all series).
func (g *Graphite) RunQuery(ctx context.Context, query string) (float64, error) {
	params, err := url.ParseQuery(strings.TrimSpace(spaces.ReplaceAllString(query, " ")))
	if err != nil {
		return 0, fmt.Errorf("graphite query is not URL parameters (target=…&from=…): %v: %w", err, ErrQueryRejected)
	}
	clean := url.Values{}
	for k, vs := range params {
		for _, v := range vs {
			clean.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		}
	}
	params = clean
	params.Set("format", "json")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.address+"/render?"+params.Encode(), nil)
	if err != nil {
		return 0, fmt.Errorf("graphite request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if g.username != "" {
		req.SetBasicAuth(g.username, g.password)
	}
	resp, err := g.cfg.client().Do(req)
	if err != nil {
		return 0, fmt.Errorf("graphite %s: %w", RedactURL(g.address), redactErr(err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode != http.StatusOK {
		return 0, statusError("graphite "+RedactURL(g.address), resp.StatusCode, body)
	}
	var series []struct {
		Target     string          `json:"target"`
		Datapoints []graphitePoint `json:"datapoints"`
	}
	if err := json.Unmarshal(body, &series); err != nil {
		return 0, fmt.Errorf("graphite %s: decoding response: %w", RedactURL(g.address), err)
	}
	var value *float64
	for _, s := range series {
		for _, p := range s.Datapoints {
			if p[0] != nil {
				value = p[0]
			}
		}
	}
	if value == nil {
		return 0, ErrNoValues
	}
	return *value, nil
}
