package workload

import (
	"context"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
)

// ReadyWatcher waits for Deployments to become ready on the events of one informer per namespace, which runs only
// while a wait in that namespace is open (and idle after the last one ends): one list and one watch for the API
// server however many rollouts of the namespace wait, no request while none does, and a wait that ends on the
// event that made the workload ready instead of at the next poll. A DaemonSet target is polled (IsReady) instead,
// and so is a Deployment in a namespace whose Deployments the worker may not list and watch (a Role that grants
// only get): the API server's refusal ends the informer, and its waits poll.
type ReadyWatcher struct {
	k *Client
	// Idle is how long a namespace's informer outlives its last wait, so that the waits of a release that follow
	// each other share it; PollEvery is the poll of a DaemonSet target, or of a Deployment that cannot be watched.
	Idle, PollEvery time.Duration
	// Denied, when set, hears of each namespace whose Deployments the API server refused to list or watch (once
	// per informer: a later wait there tries again, so that a granted role takes effect without a restart).
	Denied func(namespace string, err error)

	mu  sync.Mutex
	nss map[string]*nsWatch
}

// nsWatch is the informer of one namespace and the waits it serves.
type nsWatch struct {
	namespace string
	inf       cache.SharedIndexInformer
	stop      chan struct{}
	// listErr is the informer's last failure to list or watch (for the reason of a wait that ends before the
	// list); denied is closed when the API server refused it (Forbidden, Unauthorized): its waits poll instead.
	listErr error
	denied  chan struct{}
	waits   map[string]map[chan struct{}]struct{} // by Deployment name
	open    int
	idle    *time.Timer
	stopped bool
}

// NewReadyWatcher returns a watcher that watches and polls through k's clientset.
func NewReadyWatcher(k *Client) *ReadyWatcher {
	return &ReadyWatcher{k: k, Idle: 30 * time.Second, PollEvery: 2 * time.Second, nss: map[string]*nsWatch{}}
}

// Informers is the number of namespace informers running (for tests: none while no wait is open, after Idle).
func (rw *ReadyWatcher) Informers() int {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	return len(rw.nss)
}

// AwaitReady returns when the canary's target (primary false) or its primary is ready, with IsReady's rules and
// messages, or when ctx ends: then ready is false and reason the last one observed (ctx's error is not returned:
// the caller's deadline is an answer, not a failure). A workload that does not exist is a permanent error, as in
// IsReady.
func (rw *ReadyWatcher) AwaitReady(ctx context.Context, c *v1beta1.Canary, primary bool) (ready bool, reason string, err error) {
	if c.Spec.TargetRef.Kind != KindDeployment {
		return rw.pollReady(ctx, c, primary)
	}
	name, threshold := c.Spec.TargetRef.Name, readyThreshold(c, primary)
	if primary {
		name = primaryName(c)
	}
	ns, ch := rw.join(c.Namespace, name)
	ready, reason, denied, err := rw.watchReady(ctx, ns, ch, name, threshold)
	rw.leave(ns, name, ch)
	if denied {
		return rw.pollReady(ctx, c, primary)
	}
	return ready, reason, err
}

// watchReady is AwaitReady on ns's informer. It returns denied when the API server refused the informer's list or
// watch, before or during the wait: its store may then be stale, and the wait polls instead.
func (rw *ReadyWatcher) watchReady(ctx context.Context, ns *nsWatch, ch chan struct{}, name string, threshold int) (ready bool, reason string, denied bool, err error) {
	listed, denied, reason := rw.listed(ctx, ns)
	if !listed {
		return false, reason, denied, nil
	}
	for {
		obj, found, err := ns.inf.GetStore().GetByKey(ns.namespace + "/" + name)
		if err != nil {
			return false, "", false, kubeobj.APIError("get", KindDeployment, ns.namespace, name, err)
		}
		if !found {
			return false, "", false, kubeobj.Permanentf("%s %s/%s not found", KindDeployment, ns.namespace, name)
		}
		if ready, reason = deploymentReady(obj.(*appsv1.Deployment), threshold); ready {
			return true, "", false, nil
		}
		select {
		case <-ch:
		case <-ns.denied:
			return false, "", true, nil
		case <-ctx.Done():
			return false, reason, false, nil
		}
	}
}

// listed waits until ns's informer has listed the namespace's Deployments. It returns denied when the API server
// refused the list, and a reason (the last error, if any) when ctx ends first.
func (rw *ReadyWatcher) listed(ctx context.Context, ns *nsWatch) (ok, denied bool, reason string) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !ns.inf.HasSynced() {
		select {
		case <-ns.denied:
			return false, true, ""
		case <-ctx.Done():
			reason = "waiting for the list of Deployments in " + ns.namespace
			rw.mu.Lock()
			if ns.listErr != nil {
				reason += " (last error: " + ns.listErr.Error() + ")"
			}
			rw.mu.Unlock()
			return false, false, reason
		case <-t.C:
		}
	}
	return true, false, ""
}

// pollReady is AwaitReady by IsReady every PollEvery.
func (rw *ReadyWatcher) pollReady(ctx context.Context, c *v1beta1.Canary, primary bool) (bool, string, error) {
	t := time.NewTicker(rw.PollEvery)
	defer t.Stop()
	for {
		ready, reason, err := rw.k.IsReady(ctx, c, primary)
		if ctx.Err() != nil {
			return false, reason, nil
		}
		if err != nil || ready {
			return ready, reason, err
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return false, reason, nil
		}
	}
}

// join registers a wait for Deployment name, starting the namespace's informer when none runs.
func (rw *ReadyWatcher) join(namespace, name string) (*nsWatch, chan struct{}) {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	ns := rw.nss[namespace]
	if ns == nil {
		ns = rw.start(namespace)
		rw.nss[namespace] = ns
	}
	if ns.idle != nil {
		ns.idle.Stop()
		ns.idle = nil
	}
	ch := make(chan struct{}, 1)
	if ns.waits[name] == nil {
		ns.waits[name] = map[chan struct{}]struct{}{}
	}
	ns.waits[name][ch] = struct{}{}
	ns.open++
	return ns, ch
}

// leave ends a wait; the namespace's informer stops Idle after its last wait ends, unless another joins.
func (rw *ReadyWatcher) leave(ns *nsWatch, name string, ch chan struct{}) {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	delete(ns.waits[name], ch)
	if len(ns.waits[name]) == 0 {
		delete(ns.waits, name)
	}
	if ns.open--; ns.open > 0 {
		return
	}
	if ns.stopped {
		return
	}
	ns.idle = time.AfterFunc(rw.Idle, func() {
		rw.mu.Lock()
		defer rw.mu.Unlock()
		if ns.open == 0 {
			rw.stopLocked(ns)
		}
	})
}

// stopLocked stops ns's informer and forgets it, so that the next wait in its namespace starts another; rw.mu
// is held.
func (rw *ReadyWatcher) stopLocked(ns *nsWatch) {
	if ns.stopped {
		return
	}
	ns.stopped = true
	close(ns.stop)
	if rw.nss[ns.namespace] == ns {
		delete(rw.nss, ns.namespace)
	}
}

// listFailed records a failure of ns's informer to list or watch. A refusal (a role without list or watch) stops
// the informer, whose reflector would retry it for as long as waits are open, and sends its waits to polling.
func (rw *ReadyWatcher) listFailed(ns *nsWatch, err error) {
	rw.mu.Lock()
	ns.listErr = err
	refused := !ns.stopped && (apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err))
	if refused {
		rw.stopLocked(ns)
		close(ns.denied)
	}
	rw.mu.Unlock()
	if refused && rw.Denied != nil {
		rw.Denied(ns.namespace, err) // outside the lock: the hook may take its time, or wait again
	}
}

// start runs the informer of namespace's Deployments, keeping of each only what readiness is judged on.
func (rw *ReadyWatcher) start(namespace string) *nsWatch {
	deps := rw.k.kube.AppsV1().Deployments(namespace)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return deps.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return deps.Watch(ctx, o)
		},
	}
	ns := &nsWatch{namespace: namespace, stop: make(chan struct{}), denied: make(chan struct{}),
		waits: map[string]map[chan struct{}]struct{}{}}
	ns.inf = cache.NewSharedIndexInformer(lw, &appsv1.Deployment{}, 0, cache.Indexers{})
	_ = ns.inf.SetTransform(readinessOnly)
	_ = ns.inf.SetWatchErrorHandlerWithContext(func(ctx context.Context, r *cache.Reflector, err error) {
		cache.DefaultWatchErrorHandler(ctx, r, err) // its log line, as without a handler
		rw.listFailed(ns, err)
	})
	notify := func(obj any) {
		d, ok := obj.(*appsv1.Deployment)
		if !ok {
			if t, tok := obj.(cache.DeletedFinalStateUnknown); tok {
				d, ok = t.Obj.(*appsv1.Deployment)
			}
		}
		if !ok {
			return
		}
		rw.mu.Lock()
		defer rw.mu.Unlock()
		for ch := range ns.waits[d.Name] {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
	_, _ = ns.inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    notify,
		UpdateFunc: func(_, obj any) { notify(obj) },
		DeleteFunc: notify,
	})
	go ns.inf.Run(ns.stop)
	return ns
}

// readinessOnly keeps of a Deployment what deploymentReady reads: its name, generation, replicas and status. A
// namespace of a thousand canaries then costs the worker a few hundred bytes a Deployment, not its pod template.
func readinessOnly(obj any) (any, error) {
	d, ok := obj.(*appsv1.Deployment)
	if !ok {
		return obj, nil
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: d.Name, Namespace: d.Namespace, Generation: d.Generation,
			ResourceVersion: d.ResourceVersion, UID: d.UID},
		Spec:   appsv1.DeploymentSpec{Replicas: d.Spec.Replicas},
		Status: d.Status,
	}, nil
}

// readyThreshold is the percentage of ready replicas the canary (primary false) or primary needs.
func readyThreshold(c *v1beta1.Canary, primary bool) int {
	threshold := v1beta1.DefaultReadyThreshold
	if a := c.Spec.Analysis; a != nil {
		if primary && a.PrimaryReadyThreshold != nil {
			threshold = *a.PrimaryReadyThreshold
		}
		if !primary && a.CanaryReadyThreshold != nil {
			threshold = *a.CanaryReadyThreshold
		}
	}
	return threshold
}
