// Package metrics runs metric queries against the backends a canary's analysis reads (Prometheus, Datadog,
// New Relic, CloudWatch, Graphite, InfluxDB, Cloud Monitoring, Dynatrace, Keptn, Splunk Observability), renders
// MetricTemplate queries, and holds the builtin queries of every router provider. It knows nothing of Temporal:
// callers decide what is retried.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"k8s.io/client-go/dynamic"
)

// Provider runs one query and returns its single value.
type Provider interface {
	// RunQuery returns the query's value, ErrNoValues when the backend has no data for it, an error wrapping
	// ErrQueryRejected when the backend refuses the query itself, or any other error when the backend could not be
	// asked (worth retrying).
	RunQuery(ctx context.Context, query string) (float64, error)
}

var (
	// ErrNoValues means the query ran and returned nothing usable (empty result or NaN): "no values found".
	ErrNoValues = errors.New("no values found")
	// ErrQueryRejected means the backend answered that the query is invalid (an HTTP 4xx); asking again won't help.
	ErrQueryRejected = errors.New("query rejected")
	// ErrInvalidConfig means the provider cannot be built from what the spec and its Secret say (unknown type, bad
	// address, missing credential key); it is a permanent problem of the spec.
	ErrInvalidConfig = errors.New("invalid metrics provider")
)

// Config is what a provider needs: the MetricTemplate's provider block resolved, with its Secret's data.
type Config struct {
	// Type is prometheus (default) or one of the other names Backends lists.
	Type    string
	Address string
	Region  string
	// Credentials is the data of the template's secretRef Secret (nil without one).
	Credentials map[string][]byte
	// HasSecret says the template names a Secret, so the provider's required keys must be in it.
	HasSecret bool
	// Interval is the metric's interval; vendor APIs that take a time window query [now-window, now].
	Interval time.Duration
	// HTTPClient sends the requests; nil means a client with a 30s timeout.
	HTTPClient *http.Client
	// Now is the clock for time windows; nil means time.Now.
	Now func() time.Time
	// Kube reads and writes Kubernetes objects for the backends that live in the cluster (keptn); nil means
	// those backends cannot be built.
	Kube dynamic.Interface
}

func (c Config) client() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	return &http.Client{Timeout: 30 * time.Second}
}

func (c Config) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c Config) interval() time.Duration {
	if c.Interval <= 0 {
		return time.Minute
	}
	return c.Interval
}

// backends are the MetricTemplate provider types this package can query, with their constructors.
var backends = map[string]func(Config) (Provider, error){
	"prometheus":  backend(NewPrometheus),
	"datadog":     backend(NewDatadog),
	"newrelic":    backend(NewNewRelic),
	"cloudwatch":  backend(NewCloudWatch),
	"graphite":    backend(NewGraphite),
	"influxdb":    backend(NewInfluxDB),
	"stackdriver": backend(NewStackdriver),
	"dynatrace":   backend(NewDynatrace),
	"keptn":       backend(NewKeptn),
	"splunk":      backend(NewSplunk),
}

// rangeBackends are the backends whose providers are RangeQueriers, so the statistical judge can read series there.
var rangeBackends = []string{"prometheus"}

// RangeQuerier is a Provider that can also read a series over a time window, one value per step: what the
// statistical judge compares canary and primary with.
type RangeQuerier interface {
	Provider
	// RunSeriesQuery returns the values of the query's series over the window ending now, oldest first, with the
	// same errors as RunQuery.
	RunSeriesQuery(ctx context.Context, query string, window, step time.Duration) ([]float64, error)
}

// RangeBackends lists the provider types whose providers are RangeQueriers, sorted.
func RangeBackends() []string {
	return append([]string(nil), rangeBackends...)
}

// backend turns a backend's typed constructor into an entry of backends.
func backend[P Provider](ctor func(Config) (P, error)) func(Config) (Provider, error) {
	return func(cfg Config) (Provider, error) { return ctor(cfg) }
}

// Backends lists the provider types New accepts, sorted.
func Backends() []string {
	out := make([]string, 0, len(backends))
	for t := range backends {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// New builds the provider named by cfg.Type (empty is prometheus).
func New(cfg Config) (Provider, error) {
	t := strings.ToLower(cfg.Type)
	if t == "" {
		t = "prometheus"
	}
	ctor, ok := backends[t]
	if !ok {
		return nil, fmt.Errorf("%w: unknown provider type %q (known: %s)", ErrInvalidConfig, cfg.Type, strings.Join(Backends(), ", "))
	}
	return ctor(cfg)
}

// RedactURL returns scheme and host of a URL only, so a token in its path or query never reaches an error message.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "<invalid URL>"
	}
	return u.Scheme + "://" + u.Host
}

// backendAddress is the backend's base URL: cfg.Address without a trailing slash, or def when it is empty; it
// must be an absolute URL with a host.
func backendAddress(cfg Config, provider, def string) (string, error) {
	addr := strings.TrimSuffix(cfg.Address, "/")
	if addr == "" {
		addr = def
	}
	if u, err := url.Parse(addr); addr == "" || err != nil || u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("%w: %s address %s is not a URL", ErrInvalidConfig, provider, RedactURL(addr))
	}
	return addr, nil
}

func requireKey(cfg Config, provider, key string) (string, error) {
	v, ok := cfg.Credentials[key]
	if !ok || len(v) == 0 {
		return "", fmt.Errorf("%w: %s credentials Secret has no key %q", ErrInvalidConfig, provider, key)
	}
	return strings.TrimSpace(string(v)), nil
}

// statusError classifies an HTTP error answer: 4xx (except 408 and 429) is a rejected query, the rest is transient.
// The body is included (capped) because backends explain the problem there; it never holds our credentials.
func statusError(backend string, code int, body []byte) error {
	msg := strings.TrimSpace(string(body))
	if len(msg) > 512 {
		msg = msg[:512] + "…"
	}
	if code >= 400 && code < 500 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests {
		return fmt.Errorf("%s answered %d: %s: %w", backend, code, msg, ErrQueryRejected)
	}
	return fmt.Errorf("%s answered %d: %s", backend, code, msg)
}
