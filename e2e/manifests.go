package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"text/template"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"

	"github.com/canaryflow/canaryflow/lab/labtest"
)

// PodinfoImage is the image of a podinfo version; the lab runs that version's binary for each pod.
func PodinfoImage(version string) string { return "ghcr.io/stefanprodan/podinfo:" + version }

// ApplyPodinfo creates the podinfo Deployment (2 replicas, container podinfod) and its HPA in ns, as Flagger's
// tutorials do, plus the namespace itself.
func (s *Stack) ApplyPodinfo(ctx context.Context, ns, version string) error {
	_, err := s.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	dep := labtest.Podinfo(ns, "podinfo", "podinfo", PodinfoImage(version), 2)
	if _, err := s.Kube.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create Deployment %s/podinfo: %w", ns, err)
	}
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: ns},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "podinfo"},
			MinReplicas:    ptr.To[int32](2),
			MaxReplicas:    4,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To[int32](99)},
			}}},
		},
	}
	if _, err := s.Kube.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(ctx, hpa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create HorizontalPodAutoscaler %s/podinfo: %w", ns, err)
	}
	return nil
}

// ApplyIngressRoutes routes Host podinfo.<ns> to the TraefikService canaryflow generates (named after the apex
// Service) and Host podinfo-canary.<ns> straight to the canary Service, for acceptance tests.
func (s *Stack) ApplyIngressRoutes(ctx context.Context, ns string) error {
	routes := []*unstructured.Unstructured{
		labtest.IngressRoute(ns, "podinfo", "podinfo."+ns, map[string]any{"name": "podinfo", "kind": "TraefikService"}),
		labtest.IngressRoute(ns, "podinfo-canary", "podinfo-canary."+ns, map[string]any{"name": "podinfo-canary", "port": int64(9898)}),
	}
	for _, r := range routes {
		if _, err := s.Dynamic.Resource(labtest.IngressRoutes).Namespace(ns).Create(ctx, r, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create IngressRoute %s/%s: %w", ns, r.GetName(), err)
		}
	}
	return nil
}

// CanaryOptions vary the seed Canary between scenarios.
type CanaryOptions struct {
	Namespace string
	// LoadPath is the path the rollout load test requests (/ for healthy traffic, /status/500 for errors), for
	// LoadDuration (default 2m).
	LoadPath     string
	LoadDuration string
	// ConfirmPromotion adds a confirm-promotion gate that only an approval opens.
	ConfirmPromotion bool

	TraefikURL, LoadTesterURL, PrometheusURL string
}

// The Canary of the Traefik seed article, on the lab: the acceptance test and the load test go through the lab's
// Traefik entrypoint with the right Host, from the load tester.
var canaryTemplate = template.Must(template.New("canary").Parse(`apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: {{.Namespace}}
spec:
  provider: traefik
  metricsServer: {{.PrometheusURL}}
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  autoscalerRef:
    apiVersion: autoscaling/v2
    kind: HorizontalPodAutoscaler
    name: podinfo
  progressDeadlineSeconds: 60
  service:
    port: 9898
    targetPort: http
  analysis:
    interval: 10s
    threshold: 5
    maxWeight: 50
    stepWeight: 10
    metrics:
      - name: request-success-rate
        interval: 1m
        thresholdRange:
          min: 99
      - name: request-duration
        interval: 1m
        thresholdRange:
          max: 500
    webhooks:
      - name: acceptance-test
        type: pre-rollout
        url: {{.LoadTesterURL}}
        timeout: 15s
        metadata:
          type: bash
          cmd: "curl -sd 'test' -H 'Host: podinfo-canary.{{.Namespace}}' {{.TraefikURL}}/token | grep token"
      - name: load-test
        type: rollout
        url: {{.LoadTesterURL}}
        timeout: 5s
        metadata:
          type: cmd
          cmd: "hey -z {{.LoadDuration}} -q 10 -c 2 -host podinfo.{{.Namespace}} {{.TraefikURL}}{{.LoadPath}}"
{{- if .ConfirmPromotion}}
      - name: release-manager
        type: confirm-promotion
        url: {{.LoadTesterURL}}gate/check
{{- end}}
`))

// WriteCanary writes the Canary file for opts and returns its path.
func (s *Stack) WriteCanary(name string, opts CanaryOptions) (string, error) {
	if opts.LoadPath == "" {
		opts.LoadPath = "/"
	}
	if opts.LoadDuration == "" {
		opts.LoadDuration = "2m"
	}
	opts.TraefikURL, opts.LoadTesterURL, opts.PrometheusURL = s.Lab.TraefikURL, s.LoadTesterURL, s.Lab.PrometheusURL
	var b bytes.Buffer
	if err := canaryTemplate.Execute(&b, opts); err != nil {
		return "", err
	}
	path := filepath.Join(s.Dir, name+".yaml")
	return path, os.WriteFile(path, b.Bytes(), 0o644)
}

// TraefikWeights reads the weights of the primary and the canary from the generated TraefikService.
func (s *Stack) TraefikWeights(ctx context.Context, ns, apex string) (primary, canary int64, err error) {
	ts, err := s.Dynamic.Resource(labtest.TraefikServices).Namespace(ns).Get(ctx, apex, metav1.GetOptions{})
	if err != nil {
		return 0, 0, err
	}
	services, _, _ := unstructured.NestedSlice(ts.Object, "spec", "weighted", "services")
	for _, sv := range services {
		m, _ := sv.(map[string]any)
		name, _ := m["name"].(string)
		w, _ := m["weight"].(int64)
		switch name {
		case apex + "-primary":
			primary = w
		case apex + "-canary":
			canary = w
		}
	}
	return primary, canary, nil
}

// Image returns the image of the first container of a Deployment, and its replicas.
func (s *Stack) Image(ctx context.Context, ns, name string) (image string, replicas int32, err error) {
	d, err := s.Kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", 0, err
	}
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	return d.Spec.Template.Spec.Containers[0].Image, replicas, nil
}
