package main

import (
	"context"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/activity"
	"k8s.io/client-go/rest"
)

// kubeRequests counts every request the worker makes to the Kubernetes API, by HTTP method, response code
// ("error" when no response came back) and the activity that made it (its type, as in the workflow history;
// "none" for the worker's own requests: the start-up checks and the GitOps watch). It is how an operator checks
// what a rollout costs the API server and which of its activities spend it, and that an idle worker costs
// nothing: canaryflow holds no watches or informers and polls nothing between rollouts.
type kubeRequests struct {
	total *prometheus.CounterVec
}

func newKubeRequests() *kubeRequests {
	return &kubeRequests{total: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "canaryflow_kube_requests_total",
		Help: "Requests this worker made to the Kubernetes API, by method, response code and the activity that made them.",
	}, []string{"method", "code", "activity"})}
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
	t.total.WithLabelValues(r.Method, code, activityOf(r.Context())).Inc()
	return resp, err
}

// activityOf names the activity whose context a request carries (client-go sends each request with the context
// its caller passed), "none" outside any activity. The label stays small: one value per activity type.
func activityOf(ctx context.Context) string {
	if !activity.IsActivity(ctx) {
		return "none"
	}
	return activity.GetInfo(ctx).ActivityType.Name
}
