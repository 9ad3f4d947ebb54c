package gitops

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap/zaptest"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/canaryflow/canaryflow/providers/catalog"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
	"github.com/canaryflow/canaryflow/providers/workload"
	"github.com/canaryflow/canaryflow/workflows"
)

// fakeRollouts records what the trigger asks of Temporal.
type fakeRollouts struct {
	mu       sync.Mutex
	open     string // run ID of the open run, "" for none
	failed   string
	latest   int
	releases []release
	// aborts and finalizes record the calls of a Canary's deletion, in order.
	calls     []string
	finalized []workflows.FinalizeInput
}

type release struct {
	in  workflows.RolloutInput
	sig workflows.ActionSignal
}

type fakeRun struct {
	client.WorkflowRun
	id string
}

func (r fakeRun) GetRunID() string { return r.id }

// Get is a finalisation that ended Terminated.
func (r fakeRun) Get(_ context.Context, v any) error {
	if st, ok := v.(*workflows.FinalizeStatus); ok {
		st.Phase = workflows.PhaseTerminated
	}
	return nil
}

func (f *fakeRollouts) Latest(context.Context, string) (string, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.latest++
	return f.open, f.failed, nil
}

func (f *fakeRollouts) Release(_ context.Context, in workflows.RolloutInput, sig workflows.ActionSignal) (client.WorkflowRun, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.releases = append(f.releases, release{in, sig})
	if f.open == "" {
		return fakeRun{id: "new"}, nil
	}
	return fakeRun{id: f.open}, nil
}

func (f *fakeRollouts) Abort(_ context.Context, id, runID string, sig workflows.ActionSignal) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "abort "+id+" "+runID+" by "+sig.By)
	f.open = "" // the run ended rolled back
	return nil
}

func (f *fakeRollouts) Finalize(_ context.Context, in workflows.FinalizeInput) (client.WorkflowRun, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "finalize "+workflows.FinalizeWorkflowID(in.Canary.Namespace, in.Canary.Name))
	f.finalized = append(f.finalized, in)
	return fakeRun{id: "fin"}, nil
}

func (f *fakeRollouts) deletionCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeRollouts) snapshot() (int, []release) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.latest, append([]release(nil), f.releases...)
}

func (f *fakeRollouts) setOpen(run string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.open = run
}

const ns = "test"

func canaryObject(generation int64, templateRef string) *unstructured.Unstructured {
	analysis := map[string]any{"interval": "10s", "threshold": int64(2), "maxWeight": int64(50), "stepWeight": int64(10)}
	if templateRef != "" {
		analysis["metrics"] = []any{map[string]any{"name": "errors", "templateRef": map[string]any{"name": templateRef},
			"thresholdRange": map[string]any{"max": int64(1)}}}
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "flagger.app/v1beta1", "kind": "Canary",
		"metadata": map[string]any{"name": "podinfo", "namespace": ns, "generation": generation,
			"annotations": map[string]any{lastApplied: "{…}", "team": "a"}},
		"spec": map[string]any{
			"provider":  "traefik",
			"targetRef": map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
			"service":   map[string]any{"port": int64(9898)},
			"analysis":  analysis,
		},
		"status": map[string]any{"phase": "Succeeded"},
	}}
	return u
}

func deployment(name, image string, labels, annotations map[string]string, cm string) *appsv1.Deployment {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels, Annotations: annotations, ResourceVersion: "1"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "podinfod", Image: image}}},
			},
		},
	}
	if cm != "" {
		d.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "cfg", VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: cm}}}}}
	}
	return d
}

// noConfigs is a ConfigSource with nothing in it.
type noConfigs struct{}

func (noConfigs) ConfigMap(context.Context, string, string) (*corev1.ConfigMap, bool, error) {
	return nil, false, nil
}
func (noConfigs) Secret(context.Context, string, string) (*corev1.Secret, bool, error) {
	return nil, false, nil
}

// started runs the trigger (as the leader) over fake clients and returns them.
func started(t *testing.T, objs []runtime.Object, canaries ...runtime.Object) (*fake.Clientset, *dynamicfake.FakeDynamicClient, *fakeRollouts) {
	kube, dyn, fr, _ := startedSeeing(t, objs, canaries...)
	return kube, dyn, fr
}

// startedSeeing is started, and also returns whether the trigger has looked at the Canary at a resourceVersion.
func startedSeeing(t *testing.T, objs []runtime.Object, canaries ...runtime.Object) (*fake.Clientset, *dynamicfake.FakeDynamicClient, *fakeRollouts, func(rv string) bool) {
	t.Helper()
	return startedWith(t, &fakeRollouts{}, objs, canaries...)
}

// startedWith is startedSeeing with the given Temporal fake (an open run, say).
func startedWith(t *testing.T, fr *fakeRollouts, objs []runtime.Object, canaries ...runtime.Object) (*fake.Clientset, *dynamicfake.FakeDynamicClient, *fakeRollouts, func(rv string) bool) {
	t.Helper()
	kube := fake.NewClientset(objs...)
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		canaryGVR: "CanaryList", metricTemplateGVR: "MetricTemplateList", alertProviderGVR: "AlertProviderList",
	}, canaries...)
	var mu sync.Mutex
	seen := map[string]bool{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = lead(ctx, Config{Kube: kube, Dynamic: dyn, Rollouts: fr, Capabilities: catalog.Capabilities(),
			FlaggerQuiet: DefaultFlaggerQuiet, Log: zaptest.NewLogger(t),
			synced: func(rv string) { mu.Lock(); seen[rv] = true; mu.Unlock() }})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return kube, dyn, fr, func(rv string) bool { mu.Lock(); defer mu.Unlock(); return seen[rv] }
}

func waitReleases(t *testing.T, fr *fakeRollouts, n int) []release {
	t.Helper()
	var got []release
	require.Eventually(t, func() bool { _, got = fr.snapshot(); return len(got) >= n }, 10*time.Second, 10*time.Millisecond,
		"want %d releases", n)
	return got
}

// A Canary applied with its Deployment and no primary yet is initialised; the input is the Canary as written
// (defaulted, no status, no kubectl annotation) and asks the rollout to write the Canary's status.
func TestTriggerInitialisesANewCanary(t *testing.T) {
	_, _, fr := started(t, []runtime.Object{deployment("podinfo", "podinfo:6.0.0", nil, nil, "")}, canaryObject(1, ""))
	got := waitReleases(t, fr, 1)
	in := got[0].in
	require.Equal(t, "podinfo", in.Canary.Name)
	require.True(t, in.WriteStatus)
	require.True(t, in.Defaulted)
	require.Nil(t, in.Canary.Status)
	require.Equal(t, map[string]string{"team": "a"}, in.Canary.Annotations)
	require.Equal(t, SignalBy, got[0].sig.By)
	require.Contains(t, got[0].sig.Reason, "initialise")
}

// With the primary at the target's revision nothing is due; a new image starts a release, a status write (no
// new generation) asks nothing of Temporal, a spec change reaches the open run as a revision signal, and a
// tracked ConfigMap's change is a new revision too.
func TestTriggerReleasesOnTargetChangeOnly(t *testing.T) {
	ctx := context.Background()
	target := deployment("podinfo", "podinfo:6.0.0", nil, nil, "podinfo-cfg")
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "podinfo-cfg", Namespace: ns, ResourceVersion: "1"}, Data: map[string]string{"a": "1"}}
	rev0, err := workload.Revision(ctx, cmSource{cm}, ns, &target.Spec.Template)
	require.NoError(t, err)
	primary := deployment("podinfo-primary", "podinfo:6.0.0", map[string]string{kubeobj.ManagedByLabel: kubeobj.ManagedByValue},
		map[string]string{workload.RevisionAnnotation: rev0}, "")
	kube, dyn, fr, seen := startedSeeing(t, []runtime.Object{target, primary, cm}, canaryObject(1, ""))

	// Idle: one look at Temporal for the canary (this replica just became leader), no release.
	require.Eventually(t, func() bool { n, _ := fr.snapshot(); return n == 1 }, 10*time.Second, 10*time.Millisecond)

	// New image: a release.
	releaseNewImage(ctx, t, kube, fr, target)
	fr.setOpen("run-1")

	// The rollout writes status: same generation, so Temporal is not asked.
	latest, _ := fr.snapshot()
	c := canaryObject(1, "")
	c.Object["status"] = map[string]any{"phase": "Progressing"}
	c.SetResourceVersion("5")
	_, err = dyn.Resource(canaryGVR).Namespace(ns).Update(ctx, c, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return seen("5") }, 10*time.Second, 10*time.Millisecond)
	n, _ := fr.snapshot()
	require.Equal(t, latest, n, "a status write asks Temporal nothing")

	// A spec change while the run is open: the revision signal.
	c = canaryObject(2, "")
	c.SetResourceVersion("6")
	_, err = dyn.Resource(canaryGVR).Namespace(ns).Update(ctx, c, metav1.UpdateOptions{})
	require.NoError(t, err)
	got := waitReleases(t, fr, 2)
	require.Contains(t, got[1].sig.Reason, "Canary spec changed (generation 2)")
	n, _ = fr.snapshot()
	require.Equal(t, latest+1, n, "the spec change asked Temporal once")

	// The tracked ConfigMap changes: a new revision, signalled to the open run.
	cm = cm.DeepCopy()
	cm.Data["a"] = "2"
	cm.ResourceVersion = "3"
	_, err = kube.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{})
	require.NoError(t, err)
	got = waitReleases(t, fr, 3)
	require.Contains(t, got[2].sig.Reason, "target revision ")
	require.NotEqual(t, got[0].sig.Reason, got[2].sig.Reason, "the ConfigMap's data is part of the revision")
}

// A spec change applied with a new image (one git commit) can reach the trigger's cache after the image's event:
// the release starts from the Canary the API server holds, not from the cache's older spec.
func TestTriggerReleasesTheSpecTheAPIServerHoldsNotTheCaches(t *testing.T) {
	ctx := context.Background()
	target := deployment("podinfo", "podinfo:6.0.0", nil, nil, "")
	rev0, err := workload.Revision(ctx, noConfigs{}, ns, &target.Spec.Template)
	require.NoError(t, err)
	primary := deployment("podinfo-primary", "podinfo:6.0.0", map[string]string{kubeobj.ManagedByLabel: kubeobj.ManagedByValue},
		map[string]string{workload.RevisionAnnotation: rev0}, "")
	kube, dyn, fr, _ := startedSeeing(t, []runtime.Object{target, primary}, canaryObject(1, ""))
	require.Eventually(t, func() bool { n, _ := fr.snapshot(); return n == 1 }, 10*time.Second, 10*time.Millisecond)

	// The API server holds generation 2 (threshold 3); the cache, which reads through list and watch, still has 1.
	newer := canaryObject(2, "")
	require.NoError(t, unstructured.SetNestedField(newer.Object, int64(3), "spec", "analysis", "threshold"))
	dyn.PrependReactor("get", "canaries", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, newer.DeepCopy(), nil
	})
	got := releaseNewImage(ctx, t, kube, fr, target)
	require.Equal(t, 3, got[0].in.Canary.Spec.Analysis.Threshold, "the newer spec's threshold")
}

// releaseNewImage gives the target podinfo:6.0.1 (resourceVersion 2) and returns the release the trigger starts.
func releaseNewImage(ctx context.Context, t *testing.T, kube *fake.Clientset, fr *fakeRollouts, target *appsv1.Deployment) []release {
	t.Helper()
	target = target.DeepCopy()
	target.Spec.Template.Spec.Containers[0].Image = "podinfo:6.0.1"
	target.ResourceVersion = "2"
	_, err := kube.AppsV1().Deployments(ns).Update(ctx, target, metav1.UpdateOptions{})
	require.NoError(t, err)
	got := waitReleases(t, fr, 1)
	require.Contains(t, got[0].sig.Reason, "target revision ")
	return got
}

type cmSource struct{ cm *corev1.ConfigMap }

func (s cmSource) ConfigMap(_ context.Context, _, name string) (*corev1.ConfigMap, bool, error) {
	return s.cm, s.cm.Name == name, nil
}
func (cmSource) Secret(context.Context, string, string) (*corev1.Secret, bool, error) {
	return nil, false, nil
}

// MetricTemplates come from the cluster; a Canary referencing one that does not exist starts nothing (the
// trigger logs the loader's message), and is looked at again when it changes.
func TestTriggerResolvesMetricTemplatesFromTheCluster(t *testing.T) {
	tmpl := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate",
		"metadata": map[string]any{"name": "errors", "namespace": ns, "resourceVersion": "1"},
		"spec": map[string]any{"provider": map[string]any{"type": "prometheus", "address": "http://prometheus:9090"},
			"query": "sum(rate(errors[{{ interval }}]))"},
	}}
	_, dyn, fr := started(t, []runtime.Object{deployment("podinfo", "podinfo:6.0.0", nil, nil, "")}, canaryObject(1, "missing"), tmpl)
	require.Eventually(t, func() bool { n, _ := fr.snapshot(); return n == 1 }, 10*time.Second, 10*time.Millisecond)
	_, got := fr.snapshot()
	require.Empty(t, got, "a Canary whose MetricTemplate is missing starts no rollout")

	c := canaryObject(2, "errors")
	c.SetResourceVersion("7")
	_, err := dyn.Resource(canaryGVR).Namespace(ns).Update(context.Background(), c, metav1.UpdateOptions{})
	require.NoError(t, err)
	got = waitReleases(t, fr, 1)
	require.Len(t, got[0].in.Templates, 1)
	require.Equal(t, "errors", got[0].in.Templates[0].Name)
}

// The revision the trigger computes from its caches is the one the workflow's DetectRevision computes from the
// API: the same function over the same objects.
func TestObservedRevisionIsWorkloadRevision(t *testing.T) {
	d := deployment("podinfo", "podinfo:6.0.0", nil, nil, "")
	want, err := workload.Revision(context.Background(), noConfigs{}, ns, &d.Spec.Template)
	require.NoError(t, err)
	_, _, fr := started(t, []runtime.Object{d}, canaryObject(1, ""))
	got := waitReleases(t, fr, 1)
	require.Equal(t, "initialise: target revision "+want, got[0].sig.Reason)
}
