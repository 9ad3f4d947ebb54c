package metrics

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// Secret keys the Prometheus provider reads. A Secret needs either username and password (basic auth) or token
// (bearer); headers holds extra request headers, one "Name: value" per line (for example a tenant header).
const (
	PrometheusUsernameKey = "username"
	PrometheusPasswordKey = "password"
	PrometheusTokenKey    = "token"
	PrometheusHeadersKey  = "headers"
)

// DefaultPrometheus is the Prometheus the builtin metrics query when neither the Canary nor the worker's
// configuration names one (the worker's and the backtest's default).
const DefaultPrometheus = "http://prometheus:9090"

// Prometheus runs PromQL instant queries through client_golang's API client.
type Prometheus struct {
	address string
	api     promv1.API
}

// NewPrometheus builds a Prometheus provider for cfg.Address with the credentials of cfg.Credentials.
func NewPrometheus(cfg Config) (*Prometheus, error) {
	if cfg.Address == "" {
		return nil, fmt.Errorf("%w: no Prometheus address: set spec.metricsServer, the MetricTemplate's provider.address, or the worker's default", ErrInvalidConfig)
	}
	u, err := url.Parse(cfg.Address)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("%w: prometheus address %s is not an http(s) URL", ErrInvalidConfig, RedactURL(cfg.Address))
	}
	headers := http.Header{}
	if cfg.HasSecret {
		user, hasUser := cfg.Credentials[PrometheusUsernameKey]
		pass, hasPass := cfg.Credentials[PrometheusPasswordKey]
		token, hasToken := cfg.Credentials[PrometheusTokenKey]
		extra, hasHeaders := cfg.Credentials[PrometheusHeadersKey]
		switch {
		case hasToken:
			headers.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
		case hasUser && hasPass:
			r := &http.Request{Header: http.Header{}}
			r.SetBasicAuth(string(user), string(pass))
			headers.Set("Authorization", r.Header.Get("Authorization"))
		case hasUser || hasPass:
			return nil, fmt.Errorf("%w: prometheus credentials Secret needs both %q and %q", ErrInvalidConfig, PrometheusUsernameKey, PrometheusPasswordKey)
		case !hasHeaders:
			return nil, fmt.Errorf("%w: prometheus credentials Secret has none of the keys %q, %q+%q, %q", ErrInvalidConfig,
				PrometheusTokenKey, PrometheusUsernameKey, PrometheusPasswordKey, PrometheusHeadersKey)
		}
		if hasHeaders {
			if err := parseHeaderLines(string(extra), headers); err != nil {
				return nil, err
			}
		}
	}
	base := cfg.client()
	client := *base
	inner := base.Transport
	if inner == nil {
		inner = http.DefaultTransport
	}
	client.Transport = headerTransport{headers: headers, next: inner}
	c, err := api.NewClient(api.Config{Address: cfg.Address, Client: &client})
	if err != nil {
		return nil, fmt.Errorf("%w: prometheus client for %s: %v", ErrInvalidConfig, RedactURL(cfg.Address), err)
	}
	return &Prometheus{address: RedactURL(cfg.Address), api: promv1.NewAPI(c)}, nil
}

// parseHeaderLines reads "Name: value" lines into h. Errors never quote a value.
func parseHeaderLines(s string, h http.Header) error {
	sc := bufio.NewScanner(strings.NewReader(s))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return fmt.Errorf("%w: prometheus credentials key %q line %d is not \"Name: value\"", ErrInvalidConfig, PrometheusHeadersKey, n)
		}
		h.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	return nil
}

type headerTransport struct {
	headers http.Header
	next    http.RoundTripper
}

func (t headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if len(t.headers) == 0 {
		return t.next.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	for k, vs := range t.headers {
		r.Header[k] = append([]string(nil), vs...)
	}
	return t.next.RoundTrip(r)
}

var spaces = regexp.MustCompile(`\s+`)

// RunQuery runs an instant query and returns the value of its (first) sample; an empty result or NaN is
// ErrNoValues, as in Flagger.
func (p *Prometheus) RunQuery(ctx context.Context, query string) (float64, error) {
	v, _, _, err := p.api.Query(ctx, oneLine(query), timeNow())
	if err != nil {
		return 0, p.queryError(err)
	}
	var out []float64
	switch val := v.(type) {
	case model.Vector:
		for _, s := range val {
			out = append(out, float64(s.Value))
		}
	case *model.Scalar:
		out = append(out, float64(val.Value))
	case model.Matrix:
		for _, s := range val {
			if n := len(s.Values); n > 0 {
				out = append(out, float64(s.Values[n-1].Value))
			}
		}
	}
	if len(out) == 0 || math.IsNaN(out[0]) {
		return 0, ErrNoValues
	}
	return out[0], nil
}

// Sample is the value of a query at one evaluation time.
type Sample struct {
	At    time.Time
	Value float64
}

// maxRangePoints is the most evaluation times Prometheus accepts in one range query (it refuses more than 11,000
// points per series).
const maxRangePoints = 11000

// RunRangeQuery evaluates query at start, start+step, … up to end and returns, in time order, the value RunQuery
// would have returned at each of those times: the first series that has a value there (series in Prometheus'
// label order, where an instant query returns them unordered: the same value whenever the query yields one
// series). A time with no value or NaN is left out, as RunQuery answers ErrNoValues there. Windows longer than
// Prometheus accepts in one query are asked in several.
func (p *Prometheus) RunRangeQuery(ctx context.Context, query string, start, end time.Time, step time.Duration) ([]Sample, error) {
	if step <= 0 {
		return nil, fmt.Errorf("%w: range query step %s is not positive", ErrInvalidConfig, step)
	}
	q := oneLine(query)
	var out []Sample
	for from := start; !from.After(end); from = from.Add(step * maxRangePoints) {
		to := from.Add(step * (maxRangePoints - 1))
		if to.After(end) {
			to = end
		}
		v, _, _, err := p.api.QueryRange(ctx, q, promv1.Range{Start: from, End: to, Step: step})
		if err != nil {
			return nil, p.queryError(err)
		}
		m, ok := v.(model.Matrix)
		if !ok {
			return nil, fmt.Errorf("prometheus %s: range query answered %s, not a matrix", p.address, v.Type())
		}
		first := map[model.Time]float64{}
		for _, s := range m {
			for _, pt := range s.Values {
				if _, seen := first[pt.Timestamp]; !seen {
					first[pt.Timestamp] = float64(pt.Value)
				}
			}
		}
		for t := from; !t.After(to); t = t.Add(step) {
			if v, ok := first[model.TimeFromUnixNano(t.UnixNano())]; ok && !math.IsNaN(v) {
				out = append(out, Sample{At: t, Value: v})
			}
		}
	}
	return out, nil
}

// queryError words an error of the query API: a query Prometheus refuses wraps ErrQueryRejected.
func (p *Prometheus) queryError(err error) error {
	var perr *promv1.Error
	if errors.As(err, &perr) && (perr.Type == promv1.ErrBadData || perr.Type == promv1.ErrClient) {
		return fmt.Errorf("prometheus %s: %s: %w", p.address, perr.Msg, ErrQueryRejected)
	}
	return fmt.Errorf("prometheus %s: %w", p.address, err)
}

// oneLine folds a query's whitespace, so templates may spread a query over lines.
func oneLine(query string) string {
	return strings.TrimSpace(spaces.ReplaceAllString(query, " "))
}
