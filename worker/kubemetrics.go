package main

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"
)

// kubeRequests counts every request the worker makes to the Kubernetes API, by HTTP method and response code
// ("error" when no response came back). It is how an operator checks what a rollout costs the API server, and
// that an idle worker costs nothing: canaryflow holds no watches or informers and polls nothing between rollouts.
type kubeRequests struct {
	total *prometheus.CounterVec
}

func newKubeRequests() *kubeRequests {
	return &kubeRequests{total: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "canaryflow_kube_requests_total",
		Help: "Requests this worker made to the Kubernetes API, by method and response code.",
	}, []string{"method", "code"})}
}

// instrument returns a copy of c whose clients count their requests.
func (k *kubeRequests) instrument(c *rest.Config) *rest.Config {
	c = rest.CopyConfig(c)
	c.Wrap(func(next http.RoundTripper) http.RoundTripper {
		return countingTransport{next: next, total: k.total}
	})
	return c
}

type countingTransport struct {
	next  http.RoundTripper
	total *prometheus.CounterVec
}

func (t countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	code := "error"
	if err == nil {
		code = strconv.Itoa(resp.StatusCode)
	}
	t.total.WithLabelValues(r.Method, code).Inc()
	return resp, err
}
