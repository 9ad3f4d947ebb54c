//go:build lab

package workload_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
	"github.com/canaryflow/canaryflow/providers/workload"
	"github.com/canaryflow/canaryflow/providers/workload/workloadtest"
)

// The readiness waits of a namespace share one list and one watch, end on the Deployment controller's update that
// made the workload ready (not at a poll), and leave nothing running once the last wait is over.
func TestReadyWatcherWaitsOnOneWatchAndStopsWhenIdle(t *testing.T) {
	ctx := context.Background()
	_, admin := labtest.Kube(t)
	var counted workloadtest.Counter
	cfg := counted.Count(workloadtest.WorkerConfig(t, labtest.RestConfig(t), labtest.Namespace(t, "cf-worker")))
	cs, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	k := workload.NewForClientset(cs)
	rw := workload.NewReadyWatcher(k)
	rw.Idle = time.Second
	ns := labtest.Namespace(t, "rw")
	// Two targets at zero replicas: ready (nothing to wait for) until scaled up.
	workloadtest.CreatePodinfo(t, admin, ns, "one", "6.0.0", 0, 0)
	workloadtest.CreatePodinfo(t, admin, ns, "two", "6.0.0", 0, 0)
	canary := func(target string) *v1beta1.Canary {
		return podinfoCanary(ns, func(c *v1beta1.Canary) { c.Name, c.Spec.TargetRef.Name, c.Spec.AutoscalerRef = target, target, nil })
	}
	counted.Take()

	type answer struct {
		ready  bool
		reason string
		err    error
		at     time.Time
	}
	wait := func(target string) chan answer {
		out := make(chan answer, 1)
		go func() {
			wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
			defer cancel()
			ok, reason, err := rw.AwaitReady(wctx, canary(target), false)
			out <- answer{ok, reason, err, time.Now()}
		}()
		return out
	}
	scale := func(name string, n int) {
		_, err := admin.AppsV1().Deployments(ns).Patch(ctx, name, types.MergePatchType,
			[]byte(fmt.Sprintf(`{"spec":{"replicas":%d}}`, n)), metav1.PatchOptions{})
		require.NoError(t, err)
	}
	scale("one", 2)
	scale("two", 3)
	one, two := wait("one"), wait("two")
	for _, ch := range []chan answer{one, two} {
		a := <-ch
		require.NoError(t, a.err)
		require.True(t, a.ready, a.reason)
	}
	// One list and one watch of the namespace's Deployments for both waits; no read of either Deployment.
	// (The counter sees paths without their query: the watch is a GET of the list's path with ?watch=true.)
	var listsAndWatches, gets int
	for _, r := range counted.Take() {
		switch {
		case strings.HasPrefix(r, "GET /apis/apps/v1/namespaces/"+ns+"/deployments/"):
			gets++
		case r == "GET /apis/apps/v1/namespaces/"+ns+"/deployments":
			listsAndWatches++
		}
	}
	require.Zero(t, gets, "no Deployment is read by itself")
	require.GreaterOrEqual(t, listsAndWatches, 2, "a list and a watch")
	require.LessOrEqual(t, listsAndWatches, 3, "one list and one watch (a watch may be re-established once)")
	// Both really are ready, read directly.
	for _, name := range []string{"one", "two"} {
		ok, reason, err := k.IsReady(ctx, canary(name), false)
		require.NoError(t, err)
		require.True(t, ok, reason)
	}

	// Idle: the informer stops, and no request follows.
	require.Eventually(t, func() bool { return rw.Informers() == 0 }, 10*time.Second, 50*time.Millisecond)
	counted.Take()
	time.Sleep(3 * time.Second) // a window in which a running informer would resync or re-watch; nothing may come
	require.Empty(t, slices.DeleteFunc(counted.Take(), func(r string) bool { return !strings.Contains(r, "/deployments") }))

	// A Deployment that does not exist is a permanent error, as IsReady's.
	_, _, err = rw.AwaitReady(ctx, canary("missing"), false)
	require.Error(t, err)
	var perm *kubeobj.PermanentError
	require.ErrorAs(t, err, &perm)
	require.Contains(t, err.Error(), "Deployment "+ns+"/missing not found")
}

// A namespace whose Role grants get on Deployments but neither list nor watch (a hand-written role): the real API
// server refuses the informer's list, and the waits there poll the Deployment instead of waiting out their
// deadline on a list that never comes.
func TestReadyWatcherPollsWhereTheRoleGrantsOnlyGet(t *testing.T) {
	ctx := context.Background()
	rc, admin := labtest.Kube(t)
	ns := labtest.Namespace(t, "rw-get")
	_, err := admin.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "get-deployments"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get"}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "getter"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "get-deployments"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "get-deployments"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "getter", Namespace: ns}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	cs, err := kubernetes.NewForConfig(workloadtest.TokenConfig(t, rc, ns, "getter"))
	require.NoError(t, err)
	workloadtest.CreatePodinfo(t, admin, ns, "app", "6.0.0", 0, 0)
	// The authorizer learns of the binding through a watch: wait until get is allowed (and list is not).
	require.Eventually(t, func() bool {
		_, err := cs.AppsV1().Deployments(ns).Get(ctx, "app", metav1.GetOptions{})
		return err == nil
	}, 20*time.Second, 100*time.Millisecond, "the role never took effect")
	_, err = cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	require.True(t, apierrors.IsForbidden(err), "the role must not allow list: %v", err)

	rw := workload.NewReadyWatcher(workload.NewForClientset(cs))
	rw.PollEvery = 200 * time.Millisecond
	denied := make(chan string, 4)
	rw.Denied = func(namespace string, err error) { denied <- namespace + ": " + err.Error() }
	_, err = admin.AppsV1().Deployments(ns).Patch(ctx, "app", types.MergePatchType, []byte(`{"spec":{"replicas":2}}`), metav1.PatchOptions{})
	require.NoError(t, err)
	c := podinfoCanary(ns, func(c *v1beta1.Canary) { c.Name, c.Spec.TargetRef.Name, c.Spec.AutoscalerRef = "app", "app", nil })
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	ok, reason, err := rw.AwaitReady(wctx, c, false)
	require.NoError(t, err)
	require.True(t, ok, "ready by polling, not at the deadline: %s", reason)
	select {
	case d := <-denied:
		require.Contains(t, d, ns+": ")
		require.Contains(t, d, "forbidden")
	default:
		t.Fatal("the refused list was not reported")
	}
	require.Equal(t, 0, rw.Informers(), "no informer keeps retrying a refused list")
}
