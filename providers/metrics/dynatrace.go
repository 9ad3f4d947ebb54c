package metrics

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Dynatrace's Metrics API v2 (GET /api/v2/metrics/query, "Authorization: Api-Token …") and the Secret key Flagger
// reads.
const (
	DynatraceTokenKey = "dynatrace_token"
	// dynatraceWindowFactor: the window is ten metric intervals, as in Flagger, folded into one value by
	// resolution=Inf.
	dynatraceWindowFactor = 10
)

// Dynatrace runs metric selectors through the Metrics API v2 of an environment.
type Dynatrace struct {
	cfg     Config
	address string
	token   string
}

// NewDynatrace builds a Dynatrace provider for cfg.Address (the environment URL, e.g.
// https://<id>.live.dynatrace.com); the Secret must hold dynatrace_token.
func NewDynatrace(cfg Config) (*Dynatrace, error) {
	if cfg.Address == "" {
		return nil, fmt.Errorf("%w: dynatrace needs provider.address (the environment URL, e.g. https://abc12345.live.dynatrace.com)", ErrInvalidConfig)
	}
	addr, err := backendAddress(cfg, "dynatrace", "")
	if err != nil {
		return nil, err
	}
	token, err := requireKey(cfg, "dynatrace", DynatraceTokenKey)
	if err != nil {
		return nil, err
	}
	return &Dynatrace{cfg: cfg, address: addr, token: token}, nil
}

type dynatraceAnswer struct {
	Result []struct {
		MetricID string `json:"metricId"`
		Data     []struct {
			Values []*float64 `json:"values"`
		} `json:"data"`
	} `json:"result"`
}

// RunQuery asks for the selector over [now-10×interval, now] at resolution Inf and returns the first value of the
// last series of the first result, as Flagger does. A null value (Dynatrace's "no data in this slot") is no data.
func (d *Dynatrace) RunQuery(ctx context.Context, query string) (float64, error) {
	now := d.cfg.now().UnixMilli()
	from := now - dynatraceWindowFactor*d.cfg.interval().Milliseconds()
	q := url.Values{}
	q.Set("metricSelector", strings.TrimSpace(query))
	q.Set("resolution", "Inf")
	q.Set("from", strconv.FormatInt(from, 10))
	q.Set("to", strconv.FormatInt(now, 10))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.address+"/api/v2/metrics/query?"+q.Encode(), nil)
	if err != nil {
		return 0, fmt.Errorf("dynatrace request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Api-Token "+d.token)
	resp, err := d.cfg.client().Do(req)
	if err != nil {
		return 0, fmt.Errorf("dynatrace %s: %w", RedactURL(d.address), redactErr(err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode != http.StatusOK {
		return 0, statusError("dynatrace "+RedactURL(d.address), resp.StatusCode, body)
	}
	var a dynatraceAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return 0, fmt.Errorf("dynatrace %s: decoding response: %w", RedactURL(d.address), err)
	}
	if len(a.Result) == 0 || len(a.Result[0].Data) == 0 {
		return 0, ErrNoValues
	}
	series := a.Result[0].Data[len(a.Result[0].Data)-1]
	if len(series.Values) == 0 || series.Values[0] == nil || math.IsNaN(*series.Values[0]) {
		return 0, ErrNoValues
	}
	return *series.Values[0], nil
}
