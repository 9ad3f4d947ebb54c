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
	q := strings.TrimSpace(spaces.ReplaceAllString(query, " "))
	v, _, _, err := p.api.Query(ctx, q, timeNow())
	if err != nil {
		var perr *promv1.Error
		if errors.As(err, &perr) && (perr.Type == promv1.ErrBadData || perr.Type == promv1.ErrClient) {
			return 0, fmt.Errorf("prometheus %s: %s: %w", p.address, perr.Msg, ErrQueryRejected)
		}
		return 0, fmt.Errorf("prometheus %s: %w", p.address, err)
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

// RunRangeQuery runs a range query over [end−window, end] with the given step and returns the values of its
// (first) series in time order, NaN points left out; a result with no value is ErrNoValues. The statistical judge
// reads canary and primary this way: one sample per step, as a Mann–Whitney test needs (±Inf points, which rank
// but say nothing about size, are left out with the NaN ones).
func (p *Prometheus) RunRangeQuery(ctx context.Context, query string, window, step time.Duration) ([]float64, error) {
	q := strings.TrimSpace(spaces.ReplaceAllString(query, " "))
	end := timeNow()
	v, _, _, err := p.api.QueryRange(ctx, q, promv1.Range{Start: end.Add(-window), End: end, Step: step})
	if err != nil {
		var perr *promv1.Error
		if errors.As(err, &perr) && (perr.Type == promv1.ErrBadData || perr.Type == promv1.ErrClient) {
			return nil, fmt.Errorf("prometheus %s: %s: %w", p.address, perr.Msg, ErrQueryRejected)
		}
		return nil, fmt.Errorf("prometheus %s: %w", p.address, err)
	}
	var out []float64
	if m, ok := v.(model.Matrix); ok && len(m) > 0 {
		for _, s := range m[0].Values {
			if f := float64(s.Value); !math.IsNaN(f) && !math.IsInf(f, 0) {
				out = append(out, f)
			}
		}
	}
	if len(out) == 0 {
		return nil, ErrNoValues
	}
	return out, nil
}
