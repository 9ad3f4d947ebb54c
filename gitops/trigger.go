// Package gitops is canaryflow's GitOps mode: a trigger that watches Canary objects (flagger.app/v1beta1) and their
// targets with informers and starts or signals each canary's rollout workflow when the target's revision changes,
// as `starter rollout` does from CI, so that a release is a `kubectl apply` (or Flux, Argo CD) and nothing else.
// One replica triggers at a time (a Lease); the rollouts themselves run on every worker, as always. It polls
// nothing: between events it makes no request but the Lease's renewals.
package gitops

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/util/workqueue"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
	"github.com/canaryflow/canaryflow/providers/workload"
	"github.com/canaryflow/canaryflow/workflows"
)

// LeaseName is the Lease through which the replicas elect the one running the trigger.
const LeaseName = "canaryflow-gitops"

// SignalBy is who the trigger's revision signals say asked (recorded in the rollout's history).
const SignalBy = "canaryflow-gitops"

// Leader election timing. The leader renews every retryPeriod (one request); a replica that stops without
// releasing the Lease is replaced within leaseDuration. Longer than client-go's usual 15/10/2 s on purpose: the
// renewals are the trigger's only requests while nothing changes, and a missed release waits at most a minute.
const (
	leaseDuration = 60 * time.Second
	renewDeadline = 40 * time.Second
	retryPeriod   = 10 * time.Second
)

// Rollouts is what the trigger needs of workflows/rolloutclient.Client.
type Rollouts interface {
	Latest(ctx context.Context, id string) (openRun, failedRevision string, err error)
	Release(ctx context.Context, in workflows.RolloutInput, sig workflows.ActionSignal) (client.WorkflowRun, error)
	Abort(ctx context.Context, id, runID string, sig workflows.ActionSignal) error
	Finalize(ctx context.Context, in workflows.FinalizeInput) (client.WorkflowRun, error)
}

// Config is what the trigger runs with.
type Config struct {
	Kube     kubernetes.Interface
	Dynamic  dynamic.Interface
	Rollouts Rollouts
	// Capabilities is what this build can run (providers/catalog): a Canary is validated against it.
	Capabilities *v1beta1.Capabilities
	// Namespaces, when set, are the only namespaces watched (namespaced RBAC); empty: every namespace.
	Namespaces []string
	// LeaseNamespace is the worker's own namespace, where the Lease lives.
	LeaseNamespace string
	// Identity names this replica in the Lease (unique per process).
	Identity string
	// FlaggerQuiet: see flaggerActing; zero is DefaultFlaggerQuiet.
	FlaggerQuiet time.Duration
	Log          *zap.Logger
	// synced, when set, is called after each look at a canary with the resourceVersion of the Canary it read
	// (tests wait on it instead of sleeping).
	synced func(resourceVersion string)
}

// Run runs the trigger while this replica holds the Lease, and stands by otherwise, until ctx ends (then it
// releases the Lease, so another replica takes over at its next try).
func Run(ctx context.Context, cfg Config) error {
	if cfg.FlaggerQuiet == 0 {
		cfg.FlaggerQuiet = DefaultFlaggerQuiet
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: LeaseName, Namespace: cfg.LeaseNamespace},
		Client:     cfg.Kube.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: cfg.Identity},
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: lock, Name: LeaseName, ReleaseOnCancel: true,
			LeaseDuration: leaseDuration, RenewDeadline: renewDeadline, RetryPeriod: retryPeriod,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(lctx context.Context) {
					cfg.Log.Info("GitOps trigger leading", zap.String("identity", cfg.Identity),
						zap.String("lease", cfg.LeaseNamespace+"/"+LeaseName))
					if err := lead(lctx, cfg); err != nil {
						cfg.Log.Error("GitOps trigger stopped", zap.Error(err))
					}
				},
				OnStoppedLeading: func() { cfg.Log.Info("GitOps trigger no longer leading", zap.String("identity", cfg.Identity)) },
				OnNewLeader: func(id string) {
					if id != cfg.Identity {
						cfg.Log.Info("GitOps trigger standing by", zap.String("leader", id))
					}
				},
			},
		})
		if err != nil {
			return fmt.Errorf("GitOps leader election on Lease %s/%s: %w", cfg.LeaseNamespace, LeaseName, err)
		}
		le.Run(ctx) // returns when leadership is lost or ctx ends
	}
	return nil
}

// scope is the caches of one watched namespace ("" for all).
type scope struct {
	canaries    cache.SharedIndexInformer
	deployments cache.SharedIndexInformer
	daemonsets  cache.SharedIndexInformer
	configmaps  cache.SharedIndexInformer
	secrets     cache.SharedIndexInformer
}

// trigger is the leader's state.
type trigger struct {
	cfg    Config
	scopes map[string]*scope
	queue  workqueue.TypedRateLimitingInterface[string]
	mu     sync.Mutex
	acted  map[string]*observation // by canary key: what the last action (or decision to do nothing) was for
	said   map[string]string       // by canary key: the last reason logged for leaving it alone, to log it once
	// finalizing: the deleted canaries whose finalisation runs (finalizer.go).
	finalizing map[string]bool
}

// targetIndex indexes Canaries by "<namespace>/<targetRef.name>".
const targetIndex = "target"

func canaryTarget(obj any) ([]string, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, nil
	}
	name, _, _ := unstructured.NestedString(u.Object, "spec", "targetRef", "name")
	return []string{u.GetNamespace() + "/" + name}, nil
}

// dropManagedFields keeps the caches of workloads and configs small: the trigger reads their templates and data.
func dropManagedFields(obj any) (any, error) {
	if m, err := metaOf(obj); err == nil {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

func metaOf(obj any) (metav1.Object, error) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("not an object: %T", obj)
	}
	return m, nil
}

// lead watches and triggers until ctx ends (leadership lost or shutdown).
func lead(ctx context.Context, cfg Config) error {
	t := &trigger{
		cfg: cfg, scopes: map[string]*scope{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "canaryflow-gitops"}),
		acted: map[string]*observation{}, said: map[string]string{}, finalizing: map[string]bool{},
	}
	defer t.queue.ShutDown()
	namespaces := cfg.Namespaces
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	var synced []cache.InformerSynced
	for _, ns := range namespaces {
		// No resync: every change arrives as an event; a resync would only re-read the caches.
		typed := informers.NewSharedInformerFactoryWithOptions(cfg.Kube, 0, informers.WithNamespace(ns),
			informers.WithTransform(dropManagedFields))
		dyn := dynamicinformer.NewFilteredDynamicSharedInformerFactory(cfg.Dynamic, 0, ns, nil)
		s := &scope{
			canaries:    dyn.ForResource(canaryGVR).Informer(),
			deployments: typed.Apps().V1().Deployments().Informer(),
			daemonsets:  typed.Apps().V1().DaemonSets().Informer(),
			configmaps:  typed.Core().V1().ConfigMaps().Informer(),
			secrets:     typed.Core().V1().Secrets().Informer(),
		}
		if err := s.canaries.AddIndexers(cache.Indexers{targetIndex: canaryTarget}); err != nil {
			return err
		}
		if err := t.handle(s); err != nil {
			return err
		}
		t.scopes[ns] = s
		typed.Start(ctx.Done())
		dyn.Start(ctx.Done())
		synced = append(synced, s.canaries.HasSynced, s.deployments.HasSynced, s.daemonsets.HasSynced,
			s.configmaps.HasSynced, s.secrets.HasSynced)
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return ctx.Err()
	}
	cfg.Log.Info("GitOps trigger watching", zap.Strings("namespaces", cfg.Namespaces))
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t.next(ctx) {
			}
		}()
	}
	<-ctx.Done()
	t.queue.ShutDown()
	wg.Wait()
	return nil
}

// handle routes the events of one scope to the canaries they concern.
func (t *trigger) handle(s *scope) error {
	canary := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { t.enqueue(obj) },
		UpdateFunc: func(old, obj any) { t.enqueueChanged(old, obj, t.enqueue) },
		DeleteFunc: func(obj any) { t.enqueue(obj) },
	}
	// A workload concerns the Canaries that target it, or whose primary it is.
	byTarget := func(obj any) {
		m, err := metaOf(obj)
		if err != nil {
			return
		}
		for _, name := range []string{m.GetName(), trimPrimary(m.GetName())} {
			objs, _ := s.canaries.GetIndexer().ByIndex(targetIndex, m.GetNamespace()+"/"+name)
			for _, c := range objs {
				t.enqueue(c)
			}
		}
	}
	// A ConfigMap or Secret may be referenced by any target of its namespace: each Canary there is looked at
	// again, from the caches only, and Temporal is asked nothing unless a revision changed.
	byNamespace := func(obj any) {
		m, err := metaOf(obj)
		if err != nil {
			return
		}
		objs, _ := s.canaries.GetIndexer().ByIndex(cache.NamespaceIndex, m.GetNamespace())
		for _, c := range objs {
			t.enqueue(c)
		}
	}
	for _, h := range []struct {
		inf cache.SharedIndexInformer
		h   cache.ResourceEventHandler
	}{
		{s.canaries, canary},
		{s.deployments, funcs(t, byTarget)},
		{s.daemonsets, funcs(t, byTarget)},
		{s.configmaps, funcs(t, byNamespace)},
		{s.secrets, funcs(t, byNamespace)},
	} {
		if _, err := h.inf.AddEventHandler(h.h); err != nil {
			return err
		}
	}
	return nil
}

func funcs(t *trigger, f func(any)) cache.ResourceEventHandlerFuncs {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    f,
		UpdateFunc: func(old, obj any) { t.enqueueChanged(old, obj, f) },
		DeleteFunc: f,
	}
}

// enqueueChanged passes on an update that changed the object (a watch re-list replays unchanged objects).
func (t *trigger) enqueueChanged(old, obj any, f func(any)) {
	o, err1 := metaOf(old)
	n, err2 := metaOf(obj)
	if err1 == nil && err2 == nil && o.GetResourceVersion() == n.GetResourceVersion() {
		return
	}
	f(obj)
}

func trimPrimary(name string) string {
	const suffix = "-primary"
	if len(name) > len(suffix) && name[len(name)-len(suffix):] == suffix {
		return name[:len(name)-len(suffix)]
	}
	return ""
}

func (t *trigger) enqueue(obj any) {
	if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
		t.queue.Add(key)
	}
}

// next handles one queued canary; false when the queue is shut down.
func (t *trigger) next(ctx context.Context) bool {
	key, quit := t.queue.Get()
	if quit {
		return false
	}
	defer t.queue.Done(key)
	if err := t.sync(ctx, key); err != nil {
		if ctx.Err() != nil {
			return true
		}
		t.cfg.Log.Warn("GitOps trigger: will try again", zap.String("canary", key), zap.Error(err))
		t.queue.AddRateLimited(key)
		return true
	}
	t.queue.Forget(key)
	return true
}

func (t *trigger) scopeOf(namespace string) *scope {
	if s, ok := t.scopes[metav1.NamespaceAll]; ok {
		return s
	}
	return t.scopes[namespace]
}

// leaveAlone logs once, per canary and reason, why the trigger does nothing for it.
func (t *trigger) leaveAlone(key, reason string) {
	t.mu.Lock()
	same := t.said[key] == reason
	t.said[key] = reason
	t.mu.Unlock()
	if !same {
		t.cfg.Log.Info("GitOps trigger leaves the canary alone", zap.String("canary", key), zap.String("reason", reason))
	}
}

// sync looks at one canary: from the caches, then (only if something it follows changed) at Temporal, then
// starts or signals its rollout.
func (t *trigger) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	s := t.scopeOf(namespace)
	if s == nil {
		return nil
	}
	obj, exists, err := s.canaries.GetIndexer().GetByKey(key)
	if err != nil {
		return err
	}
	if !exists {
		t.mu.Lock()
		delete(t.acted, key)
		delete(t.said, key)
		t.mu.Unlock()
		return nil
	}
	u := obj.(*unstructured.Unstructured)
	if t.cfg.synced != nil {
		defer t.cfg.synced(u.GetResourceVersion())
	}
	now := time.Now()
	if reason, until := flaggerActing(u, now, t.cfg.FlaggerQuiet); reason != "" {
		t.leaveAlone(key, reason)
		if !until.IsZero() {
			t.queue.AddAfter(key, until.Sub(now)) // a local timer: look again once Flagger has been quiet long enough
		}
		return nil
	}
	if done, err := t.finalization(ctx, key, u); done || err != nil {
		return err
	}
	obs, ok, err := t.observe(ctx, s, key, u)
	if !ok || err != nil {
		return err
	}
	t.mu.Lock()
	last := t.acted[key]
	t.mu.Unlock()
	if !changed(last, obs) {
		return nil
	}
	// Something it follows changed, so a run may start or be signalled: from the Canary as the API server holds
	// it, not as the cache does. A spec change applied with the image (one git commit) can reach the cache after
	// the image's event, and the run would otherwise take the spec from before the commit.
	live, err := t.cfg.Dynamic.Resource(canaryGVR).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil // deleted meanwhile: its event follows
	}
	if err != nil {
		return err
	}
	if live.GetGeneration() != u.GetGeneration() {
		u = live
		if obs, ok, err = t.observe(ctx, s, key, u); !ok || err != nil {
			return err
		}
	}
	id := v1beta1.WorkflowID(namespace, name)
	openRun, failed, err := t.cfg.Rollouts.Latest(ctx, id)
	if err != nil {
		return err
	}
	act, reason := decide(last, obs, runState{Open: openRun != "", FailedRevision: failed})
	if act == actNone {
		t.leaveAlone(key, reason)
		t.remember(key, obs)
		return nil
	}
	in, warnings, err := inputFor(ctx, t.cfg.Dynamic, t.cfg.Capabilities, u)
	if errors.Is(err, errBadCanary) {
		// Not retried: the Canary (or what it references) must change first, and that change is an event.
		t.cfg.Log.Error("GitOps trigger cannot roll out the canary: fix it and apply it again", zap.String("canary", key), zap.Error(err))
		t.remember(key, obs)
		return nil
	}
	if err != nil {
		return err
	}
	for _, w := range warnings {
		t.cfg.Log.Warn("GitOps trigger: canary warning", zap.String("canary", key), zap.String("warning", w))
	}
	in.FailedRevision = failed
	run, err := t.cfg.Rollouts.Release(ctx, in, workflows.ActionSignal{By: SignalBy, Reason: reason})
	if err != nil {
		return err
	}
	what := "started the rollout"
	if run.GetRunID() == openRun {
		what = "signalled revision to the open rollout"
	}
	t.cfg.Log.Info("GitOps trigger "+what, zap.String("canary", key), zap.String("reason", reason),
		zap.String("workflowID", id), zap.String("runID", run.GetRunID()))
	t.mu.Lock()
	delete(t.said, key)
	t.mu.Unlock()
	t.remember(key, obs)
	return nil
}

func (t *trigger) remember(key string, obs observation) {
	t.mu.Lock()
	t.acted[key] = &obs
	t.mu.Unlock()
}

// errNoTarget: the Canary's target does not exist (yet), or is of a kind canaryflow does not roll out.
var errNoTarget = errors.New("nothing to roll out")

// observe is observe for sync: ok false (and the canary left alone, with the reason) when its target does not
// exist yet, whose creation is an event that brings the canary back.
func (t *trigger) observe(ctx context.Context, s *scope, key string, u *unstructured.Unstructured) (obs observation, ok bool, err error) {
	obs, err = observe(ctx, s, u)
	if errors.Is(err, errNoTarget) {
		t.leaveAlone(key, err.Error())
		return obs, false, nil
	}
	return obs, err == nil, err
}

// observe reads a Canary's target and primary from the caches.
func observe(ctx context.Context, s *scope, u *unstructured.Unstructured) (observation, error) {
	kind, _, _ := unstructured.NestedString(u.Object, "spec", "targetRef", "kind")
	name, _, _ := unstructured.NestedString(u.Object, "spec", "targetRef", "name")
	suspended, _, _ := unstructured.NestedBool(u.Object, "spec", "suspend")
	obs := observation{Generation: u.GetGeneration(), Suspended: suspended}
	ns := u.GetNamespace()
	var workloads cache.SharedIndexInformer
	switch kind {
	case workload.KindDeployment:
		workloads = s.deployments
	case workload.KindDaemonSet:
		workloads = s.daemonsets
	default:
		return obs, fmt.Errorf("%w: spec.targetRef.kind %q of Canary %s/%s: canaryflow rolls out Deployment and DaemonSet",
			errNoTarget, kind, ns, u.GetName())
	}
	get := func(n string) (*corev1.PodTemplateSpec, metav1.Object, bool, error) {
		obj, exists, err := workloads.GetIndexer().GetByKey(ns + "/" + n)
		if err != nil || !exists {
			return nil, nil, false, err
		}
		switch w := obj.(type) {
		case *appsv1.Deployment:
			return &w.Spec.Template, w, true, nil
		case *appsv1.DaemonSet:
			return &w.Spec.Template, w, true, nil
		}
		return nil, nil, false, fmt.Errorf("unexpected %T in the %s cache", obj, kind)
	}
	tmpl, _, found, err := get(name)
	if err != nil {
		return obs, err
	}
	if !found {
		return obs, fmt.Errorf("%w: %s %s/%s (spec.targetRef of Canary %s/%s) not found: create it or fix spec.targetRef",
			errNoTarget, kind, ns, name, ns, u.GetName())
	}
	if obs.Revision, err = workload.Revision(ctx, cachedConfigs{s}, ns, tmpl); err != nil {
		return obs, err
	}
	_, primary, found, err := get(workload.PrimaryName(name))
	if err != nil {
		return obs, err
	}
	if found {
		obs.PrimaryExists = true
		obs.PrimaryForeign = !kubeobj.IsManaged(primary)
		obs.PrimaryRevision = primary.GetAnnotations()[workload.RevisionAnnotation]
	}
	return obs, nil
}

// cachedConfigs reads ConfigMaps and Secrets from the informers' caches.
type cachedConfigs struct{ s *scope }

func (c cachedConfigs) ConfigMap(_ context.Context, namespace, name string) (*corev1.ConfigMap, bool, error) {
	obj, exists, err := c.s.configmaps.GetIndexer().GetByKey(namespace + "/" + name)
	if err != nil || !exists {
		return nil, false, err
	}
	return obj.(*corev1.ConfigMap), true, nil
}

func (c cachedConfigs) Secret(_ context.Context, namespace, name string) (*corev1.Secret, bool, error) {
	obj, exists, err := c.s.secrets.GetIndexer().GetByKey(namespace + "/" + name)
	if err != nil || !exists {
		return nil, false, err
	}
	return obj.(*corev1.Secret), true, nil
}
