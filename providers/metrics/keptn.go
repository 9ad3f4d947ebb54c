package metrics

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// Keptn's metrics-operator objects Flagger reads (metrics.keptn.sh/v1beta1): a KeptnMetric's status.value, or an
// Analysis created for the query whose status.pass becomes 1 (passed) or 0 (failed).
var (
	KeptnMetricResource   = schema.GroupVersionResource{Group: "metrics.keptn.sh", Version: "v1beta1", Resource: "keptnmetrics"}
	KeptnAnalysisResource = schema.GroupVersionResource{Group: "metrics.keptn.sh", Version: "v1beta1", Resource: "analyses"}
)

// keptnQueryFormat is worded once for every error about the query's shape.
const keptnQueryFormat = "<keptnmetric|analysis>/<namespace>/<name>[/<timeframe>[/<key>=<value>;…]]"

// Keptn reads Keptn metrics-operator objects in the worker's cluster; it needs no address and no Secret.
type Keptn struct {
	kube dynamic.Interface
	// pollEvery is how often a created Analysis is read back until Keptn has evaluated it.
	pollEvery time.Duration
}

// NewKeptn builds a Keptn provider on cfg.Kube.
func NewKeptn(cfg Config) (*Keptn, error) {
	if cfg.Kube == nil {
		return nil, fmt.Errorf("%w: keptn reads objects in the cluster, and this worker has no Kubernetes client", ErrInvalidConfig)
	}
	return &Keptn{kube: cfg.Kube, pollEvery: time.Second}, nil
}

type keptnQuery struct {
	resource  schema.GroupVersionResource
	kind      string
	namespace string
	name      string
	timeframe string
	args      map[string]any
}

// parseKeptnQuery reads Flagger's query format. Flagger lowercases the whole query; canaryflow lowercases the kind
// and timeframe only, so analysis argument values keep their case.
func parseKeptnQuery(query string) (keptnQuery, error) {
	parts := strings.Split(strings.TrimSpace(query), "/")
	if len(parts) < 3 || parts[1] == "" || parts[2] == "" {
		return keptnQuery{}, fmt.Errorf("keptn query %q is not %s: %w", query, keptnQueryFormat, ErrQueryRejected)
	}
	q := keptnQuery{namespace: strings.ToLower(parts[1]), name: strings.ToLower(parts[2])}
	switch strings.ToLower(parts[0]) {
	case "keptnmetric", "keptnmetrics":
		q.resource, q.kind = KeptnMetricResource, "KeptnMetric"
	case "analysis", "analyses":
		q.resource, q.kind = KeptnAnalysisResource, "Analysis"
		q.timeframe = "1m"
		if len(parts) >= 4 && parts[3] != "" {
			q.timeframe = strings.ToLower(parts[3])
		}
		q.args = map[string]any{}
		if len(parts) >= 5 {
			for _, kv := range strings.Split(parts[4], ";") {
				if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
					q.args[k] = v
				}
			}
		}
	default:
		return keptnQuery{}, fmt.Errorf("keptn query %q names %q: the first part must be keptnmetric or analysis (%s): %w",
			query, parts[0], keptnQueryFormat, ErrQueryRejected)
	}
	return q, nil
}

// RunQuery reads a KeptnMetric's value, or runs an Analysis and returns 1 when it passed and 0 when it failed.
func (k *Keptn) RunQuery(ctx context.Context, query string) (float64, error) {
	q, err := parseKeptnQuery(query)
	if err != nil {
		return 0, err
	}
	if q.kind == "KeptnMetric" {
		return k.metric(ctx, q)
	}
	return k.analysis(ctx, q)
}

// keptnErr classifies an API error: a missing object or a missing permission is the spec's (or the install's)
// problem and fails the check with the fix; anything else is worth retrying.
func keptnErr(err error, what string, q keptnQuery) error {
	switch {
	case apierrors.IsNotFound(err):
		if strings.Contains(err.Error(), "the server could not find the requested resource") {
			return fmt.Errorf("keptn: %s %s/%s: the cluster has no %s API: install Keptn's metrics-operator: %w",
				what, q.namespace, q.name, q.resource.GroupVersion(), ErrQueryRejected)
		}
		return fmt.Errorf("keptn: %s %s/%s not found: create it or fix the query: %w", what, q.namespace, q.name, ErrQueryRejected)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("keptn: %s %s/%s: %v: grant the worker's ServiceAccount access to %s %s: %w",
			what, q.namespace, q.name, err, q.resource.Resource, q.resource.Group, ErrQueryRejected)
	case apierrors.IsInvalid(err) || apierrors.IsBadRequest(err):
		return fmt.Errorf("keptn: %s %s/%s: %v: %w", what, q.namespace, q.name, err, ErrQueryRejected)
	}
	return fmt.Errorf("keptn: %s %s/%s: %w", what, q.namespace, q.name, err)
}

// metric returns status.value of the KeptnMetric (a string holding a number). A metric Keptn has not evaluated
// yet has no value: no data, left to the metric's onNoData policy.
func (k *Keptn) metric(ctx context.Context, q keptnQuery) (float64, error) {
	obj, err := k.kube.Resource(q.resource).Namespace(q.namespace).Get(ctx, q.name, metav1.GetOptions{})
	if err != nil {
		return 0, keptnErr(err, "reading KeptnMetric", q)
	}
	raw, found, err := unstructured.NestedString(obj.Object, "status", "value")
	if err != nil {
		return 0, fmt.Errorf("keptn: KeptnMetric %s/%s status.value is not a string: %w", q.namespace, q.name, ErrQueryRejected)
	}
	if !found || raw == "" {
		return 0, ErrNoValues
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(raw), 64)
	if err != nil {
		return 0, fmt.Errorf("keptn: KeptnMetric %s/%s status.value %q is not a number: %w", q.namespace, q.name, raw, ErrQueryRejected)
	}
	if math.IsNaN(v) {
		return 0, ErrNoValues
	}
	return v, nil
}

// analysis creates an Analysis of the AnalysisDefinition named by the query over the recent timeframe, reads it
// back until Keptn has completed it (or ctx ends), and deletes it again, as Flagger does.
func (k *Keptn) analysis(ctx context.Context, q keptnQuery) (float64, error) {
	suffix := make([]byte, 3)
	if _, err := rand.Read(suffix); err != nil {
		return 0, fmt.Errorf("keptn: naming the Analysis: %w", err)
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": q.resource.GroupVersion().String(),
		"kind":       "Analysis",
		"metadata": map[string]any{
			"name":      q.name + "-" + hex.EncodeToString(suffix),
			"namespace": q.namespace,
		},
		"spec": map[string]any{
			"analysisDefinition": map[string]any{"name": q.name},
			"timeframe":          map[string]any{"recent": q.timeframe},
			"args":               q.args,
		},
	}}
	res := k.kube.Resource(q.resource).Namespace(q.namespace)
	created, err := res.Create(ctx, obj, metav1.CreateOptions{})
	if err != nil {
		return 0, keptnErr(err, "creating an Analysis of AnalysisDefinition", q)
	}
	defer func() {
		// Cleanup must happen even when the check timed out.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = res.Delete(dctx, created.GetName(), metav1.DeleteOptions{})
	}()
	tick := time.NewTicker(k.pollEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("keptn: Analysis %s/%s was not completed in time: %w", q.namespace, created.GetName(), ctx.Err())
		case <-tick.C:
		}
		got, err := res.Get(ctx, created.GetName(), metav1.GetOptions{})
		if err != nil {
			if ctx.Err() != nil {
				continue // reported by the select above
			}
			return 0, keptnErr(err, "reading back the Analysis of AnalysisDefinition", q)
		}
		state, _, _ := unstructured.NestedString(got.Object, "status", "state")
		if state != "Completed" {
			continue
		}
		pass, found, err := unstructured.NestedBool(got.Object, "status", "pass")
		if err != nil {
			return 0, fmt.Errorf("keptn: Analysis %s/%s status.pass is not a boolean: %w", q.namespace, created.GetName(), ErrQueryRejected)
		}
		if !found {
			continue
		}
		if pass {
			return 1, nil
		}
		return 0, nil
	}
}
