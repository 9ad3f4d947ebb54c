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
	"sigs.k8s.io/yaml"

	"github.com/canaryflow/canaryflow/api/v1beta1"
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
// Service) and Host podinfo-canary.<ns> straight to the canary Service, for acceptance tests. The second route is
// not named podinfo-canary: with A/B testing that is the name of canaryflow's copy of the first.
func (s *Stack) ApplyIngressRoutes(ctx context.Context, ns string) error {
	routes := []*unstructured.Unstructured{
		labtest.IngressRoute(ns, "podinfo", "podinfo."+ns, map[string]any{"name": "podinfo", "kind": "TraefikService"}),
		labtest.IngressRoute(ns, "podinfo-canary-direct", "podinfo-canary."+ns, map[string]any{"name": "podinfo-canary", "port": int64(9898)}),
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
	// StepWeight, MaxWeight and Threshold of the analysis (0: 10, 50 and 5).
	StepWeight, MaxWeight, Threshold int
	// FailingHook adds a rollout webhook that always fails (the load tester's /gate/halt answers 403), so every
	// step after the first counts a failed check and the release is rolled back at the threshold.
	FailingHook bool

	// Filled in by WriteCanary: the lab's addresses and the webhooks' commands.
	TraefikURL, LoadTesterURL, PrometheusURL string
	AcceptanceCmd, LoadCmd                   string
}

// acceptanceCmd is the acceptance test of Flagger's tutorials on the lab: a token from the canary, through the
// lab's Traefik (the IngressRoute podinfo-canary.<ns> of ApplyIngressRoutes). It retries for a few seconds:
// canaryflow runs pre-rollout hooks as soon as the canary is ready, and Traefik takes up to 2 s to route to new
// endpoints (Flagger runs them an interval later, so its tutorials' curl tries once).
func acceptanceCmd(traefikURL, ns string) string {
	return fmt.Sprintf("curl -sf --retry 5 --retry-delay 1 --retry-all-errors -d 'test' -H 'Host: podinfo-canary.%s' %s/token | grep token", ns, traefikURL)
}

// loadCmd is the tutorials' load test on the lab: hey for duration at 10 requests a second from each of 2
// workers, to host through the lab's Traefik, with the given request headers ("Name: value").
func loadCmd(traefikURL, host, path, duration string, headers ...string) string {
	cmd := fmt.Sprintf("hey -z %s -q 10 -c 2 -host %s", duration, host)
	for _, h := range headers {
		cmd += fmt.Sprintf(" -H '%s'", h)
	}
	return cmd + " " + traefikURL + path
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
    threshold: {{.Threshold}}
    maxWeight: {{.MaxWeight}}
    stepWeight: {{.StepWeight}}
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
          cmd: "{{.AcceptanceCmd}}"
      - name: load-test
        type: rollout
        url: {{.LoadTesterURL}}
        timeout: 5s
        metadata:
          type: cmd
          cmd: "{{.LoadCmd}}"
{{- if .FailingHook}}
      - name: always-fails
        type: rollout
        url: {{.LoadTesterURL}}gate/halt
{{- end}}
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
	if opts.StepWeight == 0 {
		opts.StepWeight = 10
	}
	if opts.MaxWeight == 0 {
		opts.MaxWeight = 50
	}
	if opts.Threshold == 0 {
		opts.Threshold = 5
	}
	opts.TraefikURL, opts.LoadTesterURL, opts.PrometheusURL = s.Lab.TraefikURL, s.LoadTesterURL, s.Lab.PrometheusURL
	opts.AcceptanceCmd = acceptanceCmd(s.Lab.TraefikURL, opts.Namespace)
	opts.LoadCmd = loadCmd(s.Lab.TraefikURL, "podinfo."+opts.Namespace, opts.LoadPath, opts.LoadDuration)
	var b bytes.Buffer
	if err := canaryTemplate.Execute(&b, opts); err != nil {
		return "", err
	}
	path := filepath.Join(s.Dir, name+".yaml")
	return path, os.WriteFile(path, b.Bytes(), 0o644)
}

// TraefikWeights reads the weights of the primary and the canary from the generated TraefikService.
func (s *Stack) TraefikWeights(ctx context.Context, ns, apex string) (primary, canary int64, err error) {
	sp, err := s.TraefikSplit(ctx, ns, apex, apex)
	return sp.Primary, sp.Canary, err
}

// Split is the traffic split a TraefikService holds: the weights of the primary and the canary Services, or, when
// it mirrors the primary, the percentage of its requests copied to the canary.
type Split struct {
	Primary, Canary int64
	MirrorPercent   int64
}

func (sp Split) String() string {
	if sp.MirrorPercent > 0 {
		return fmt.Sprintf("%d/%d mirroring %d%%", sp.Primary, sp.Canary, sp.MirrorPercent)
	}
	return fmt.Sprintf("%d/%d", sp.Primary, sp.Canary)
}

// TraefikSplit reads the split of the TraefikService name over the Services <apex>-primary and <apex>-canary.
func (s *Stack) TraefikSplit(ctx context.Context, ns, name, apex string) (Split, error) {
	ts, err := s.Dynamic.Resource(labtest.TraefikServices).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return Split{}, err
	}
	return splitOf(ts, apex), nil
}

func splitOf(ts *unstructured.Unstructured, apex string) Split {
	var sp Split
	if m, ok, _ := unstructured.NestedMap(ts.Object, "spec", "mirroring"); ok {
		if m["name"] == apex+"-primary" {
			sp.Primary = 100
		}
		mirrors, _, _ := unstructured.NestedSlice(m, "mirrors")
		for _, mr := range mirrors {
			if mm, _ := mr.(map[string]any); mm["name"] == apex+"-canary" {
				sp.MirrorPercent, _ = mm["percent"].(int64)
			}
		}
		return sp
	}
	services, _, _ := unstructured.NestedSlice(ts.Object, "spec", "weighted", "services")
	for _, sv := range services {
		m, _ := sv.(map[string]any)
		name, _ := m["name"].(string)
		w, _ := m["weight"].(int64)
		switch name {
		case apex + "-primary":
			sp.Primary = w
		case apex + "-canary":
			sp.Canary = w
		}
	}
	return sp
}

// SeedCanary reads one of Flagger's tutorial Canaries (api/v1beta1/testdata/flagger/<seed>.yaml) and adapts it
// to the lab: namespace ns, the traefik router (Traefik is the lab's data plane, so an NGINX tutorial's
// ingressRef has nothing to clone there), the lab's Prometheus, port 9898 (the IngressRoutes of
// ApplyIngressRoutes), and its two webhooks run by the e2e load tester against the lab's Traefik: the acceptance
// test on the canary's host, the load test on the users' host. The analysis — schedule, metrics, thresholds,
// matches, mirroring, session affinity — is the tutorial's until the caller changes it.
func (s *Stack) SeedCanary(seed, ns string) (*v1beta1.Canary, error) {
	path := filepath.Join(s.Root, "api", "v1beta1", "testdata", "flagger", seed+".yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c v1beta1.Canary
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if c.Spec.Analysis == nil {
		return nil, fmt.Errorf("%s: no spec.analysis", path)
	}
	c.Namespace = ns
	c.Spec.Provider, c.Spec.IngressRef = "traefik", nil
	c.Spec.MetricsServer = s.Lab.PrometheusURL
	c.Spec.Service.Port = 9898
	for i := range c.Spec.Analysis.Webhooks {
		h := &c.Spec.Analysis.Webhooks[i]
		h.URL = s.LoadTesterURL
		switch h.Name {
		case "acceptance-test":
			h.Metadata = &map[string]string{"type": "bash", "cmd": acceptanceCmd(s.Lab.TraefikURL, ns)}
			h.Timeout = "15s"
		case "load-test":
			h.Metadata = &map[string]string{"type": "cmd", "cmd": loadCmd(s.Lab.TraefikURL, "podinfo."+ns, "/", "2m")}
		default:
			return nil, fmt.Errorf("%s: webhook %q has no lab counterpart", path, h.Name)
		}
	}
	return &c, nil
}

// WriteCanaryObject writes c as the Canary file name.yaml and returns its path.
func (s *Stack) WriteCanaryObject(name string, c *v1beta1.Canary) (string, error) {
	data, err := yaml.Marshal(c)
	if err != nil {
		return "", err
	}
	path := filepath.Join(s.Dir, name+".yaml")
	return path, os.WriteFile(path, data, 0o644)
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
