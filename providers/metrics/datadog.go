package metrics

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Datadog's metrics query API (GET /api/v1/query) and the Secret keys holding its keys, as Flagger names them.
const (
	DatadogDefaultAddress = "https://api.datadoghq.com"
	DatadogAPIKeyKey      = "datadog_api_key"
	DatadogAppKeyKey      = "datadog_application_key"
	// datadogWindowFactor widens the window to ten metric intervals, as Flagger does, so a sparse series still
	// has a complete point.
	datadogWindowFactor = 10
)

// Datadog queries timeseries points through Datadog's v1 query API.
type Datadog struct {
	cfg     Config
	address string
	apiKey  string
	appKey  string
}

// NewDatadog builds a Datadog provider; the Secret must hold datadog_api_key and datadog_application_key.
func NewDatadog(cfg Config) (*Datadog, error) {
	addr, err := backendAddress(cfg, "datadog", DatadogDefaultAddress)
	if err != nil {
		return nil, err
	}
	api, err := requireKey(cfg, "datadog", DatadogAPIKeyKey)
	if err != nil {
		return nil, err
	}
	app, err := requireKey(cfg, "datadog", DatadogAppKeyKey)
	if err != nil {
		return nil, err
	}
	return &Datadog{cfg: cfg, address: addr, apiKey: api, appKey: app}, nil
}

type datadogResponse struct {
	Status string `json:"status"`
	Error  string `json:"error"`
	Series []struct {
		Pointlist [][]*float64 `json:"pointlist"`
	} `json:"series"`
}

// RunQuery asks for the query over [now-10×interval, now] and returns the first non-null point of the first
// series: the oldest complete one (the newest bucket is usually still filling), as Flagger does.
func (d *Datadog) RunQuery(ctx context.Context, query string) (float64, error) {
	now := d.cfg.now().Unix()
	from := now - int64(datadogWindowFactor*d.cfg.interval().Seconds())
	q := url.Values{}
	q.Set("from", strconv.FormatInt(from, 10))
	q.Set("to", strconv.FormatInt(now, 10))
	q.Set("query", strings.TrimSpace(query))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.address+"/api/v1/query?"+q.Encode(), nil)
	if err != nil {
		return 0, fmt.Errorf("datadog request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("DD-API-KEY", d.apiKey)
	req.Header.Set("DD-APPLICATION-KEY", d.appKey)
	resp, err := d.cfg.client().Do(req)
	if err != nil {
		return 0, fmt.Errorf("datadog %s: %w", RedactURL(d.address), redactErr(err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode != http.StatusOK {
		return 0, statusError("datadog "+RedactURL(d.address), resp.StatusCode, body)
	}
	var r datadogResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, fmt.Errorf("datadog %s: decoding response: %w", RedactURL(d.address), err)
	}
	if r.Status == "error" {
		return 0, fmt.Errorf("datadog: %s: %w", r.Error, ErrQueryRejected)
	}
	if len(r.Series) == 0 {
		return 0, ErrNoValues
	}
	for _, p := range r.Series[0].Pointlist {
		if len(p) == 2 && p[1] != nil {
			return *p[1], nil
		}
	}
	return 0, ErrNoValues
}
