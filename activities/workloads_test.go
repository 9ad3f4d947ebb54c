package activities

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
	"github.com/canaryflow/canaryflow/providers/router"
)

type fakeKube struct {
	target, primary string
	ready           bool
	err             error
	calls           []string
}

func (f *fakeKube) Revisions(context.Context, *v1beta1.Canary) (string, string, error) {
	return f.target, f.primary, f.err
}
func (f *fakeKube) Initialize(context.Context, *v1beta1.Canary) error {
	f.calls = append(f.calls, "initialize")
	return f.err
}
func (f *fakeKube) ScaleFromZero(context.Context, *v1beta1.Canary) error {
	f.calls = append(f.calls, "up")
	return f.err
}
func (f *fakeKube) ScaleToZero(context.Context, *v1beta1.Canary) error {
	f.calls = append(f.calls, "down")
	return f.err
}
func (f *fakeKube) IsReady(context.Context, *v1beta1.Canary, bool) (bool, string, error) {
	return f.ready, "waiting for rollout to finish", f.err
}
func (f *fakeKube) Promote(context.Context, *v1beta1.Canary) error  { return f.err }
func (f *fakeKube) Finalize(context.Context, *v1beta1.Canary) error { return f.err }
func (f *fakeKube) RevertPromotion(context.Context, *v1beta1.Canary, string) error {
	f.calls = append(f.calls, "revert")
	return f.err
}

type permanentErr struct{}

func (permanentErr) Error() string   { return "immutable field" }
func (permanentErr) Permanent() bool { return true }

func testCanary() v1beta1.Canary {
	c := v1beta1.Canary{}
	c.Name, c.Namespace = "podinfo", "test"
	c.Spec.TargetRef = v1beta1.LocalObjectReference{Kind: "Deployment", Name: "podinfo"}
	c.Spec.Provider = "traefik"
	c.SetDefaults()
	return c
}

func appErrType(t *testing.T, err error) string {
	t.Helper()
	var ae *temporal.ApplicationError
	require.ErrorAs(t, err, &ae)
	return ae.Type()
}

func TestDetectRevisionSaysFirstRolloutWhenThereIsNoPrimary(t *testing.T) {
	for _, tc := range []struct {
		name, target, primary string
		want                  RevisionResult
	}{
		{"no primary", "abc", "", RevisionResult{TargetRevision: "abc", PrimaryExists: false, Changed: false}},
		{"same", "abc", "abc", RevisionResult{TargetRevision: "abc", PrimaryRevision: "abc", PrimaryExists: true}},
		{"changed", "def", "abc", RevisionResult{TargetRevision: "def", PrimaryRevision: "abc", PrimaryExists: true, Changed: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			env := s.NewTestActivityEnvironment()
			w := &Workloads{Kube: &fakeKube{target: tc.target, primary: tc.primary}}
			env.RegisterActivity(w)
			v, err := env.ExecuteActivity(w.DetectRevision, WorkloadInput{Canary: testCanary()})
			require.NoError(t, err)
			var got RevisionResult
			require.NoError(t, v.Get(&got))
			require.Equal(t, tc.want, got)
		})
	}
}

// A worker with --release-rate names its admission queue on the runs that touch the cluster, a first rollout's
// initialisation as well as a release, and on no run that only finds the primary current.
func TestDetectRevisionNamesTheAdmissionQueueOnFirstRolloutsAndChanges(t *testing.T) {
	for _, tc := range []struct {
		name, target, primary, want string
	}{
		{"no primary", "abc", "", "canaryflow-admission"},
		{"same", "abc", "abc", ""},
		{"changed", "def", "abc", "canaryflow-admission"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			env := s.NewTestActivityEnvironment()
			w := &Workloads{Kube: &fakeKube{target: tc.target, primary: tc.primary}, AdmissionQueue: "canaryflow-admission"}
			env.RegisterActivity(w)
			v, err := env.ExecuteActivity(w.DetectRevision, WorkloadInput{Canary: testCanary()})
			require.NoError(t, err)
			var got RevisionResult
			require.NoError(t, v.Get(&got))
			require.Equal(t, tc.want, got.AdmissionQueue)
		})
	}
}

// A Canary this worker's build cannot run is refused by the first activity of the run, before any read or write.
func TestDetectRevisionRefusesACanaryThisWorkerCannotRun(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	kube := &fakeKube{target: "abc"}
	w := &Workloads{Kube: kube, Capabilities: &v1beta1.Capabilities{Routers: map[string]v1beta1.Traffic{"kubernetes": {}}}}
	env.RegisterActivity(w)
	c := testCanary()
	c.Spec.Analysis = &v1beta1.CanaryAnalysis{Interval: "1m", Threshold: 1, StepWeight: 10, MaxWeight: 50}
	_, err := env.ExecuteActivity(w.DetectRevision, WorkloadInput{Canary: c})
	require.Equal(t, ErrTypeInvalidSpec, appErrType(t, err))
	require.ErrorContains(t, err, `this worker cannot run podinfo.test, nothing was changed`)
	require.ErrorContains(t, err, `spec.provider: provider "traefik" has no router in this build`)
	require.Empty(t, kube.calls)
}

// A worker in namespaced mode refuses a Canary of a namespace it does not serve, naming the namespace, before any
// read or write; one of its namespaces runs.
func TestDetectRevisionRefusesACanaryOutsideTheWorkersNamespaces(t *testing.T) {
	for _, tc := range []struct {
		name, namespace string
		refused         bool
	}{
		{"served namespace", "team-a", false},
		{"foreign namespace", "team-c", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			env := s.NewTestActivityEnvironment()
			kube := &fakeKube{target: "abc"}
			w := &Workloads{Kube: kube, Namespaces: []string{"team-a", "team-b"}}
			env.RegisterActivity(w)
			c := testCanary()
			c.Namespace = tc.namespace
			_, err := env.ExecuteActivity(w.DetectRevision, WorkloadInput{Canary: c})
			if !tc.refused {
				require.NoError(t, err)
				return
			}
			require.Equal(t, ErrTypeInvalidSpec, appErrType(t, err))
			require.ErrorContains(t, err, `this worker runs Canaries only in namespaces team-a, team-b (CANARYFLOW_NAMESPACES), `+
				`not podinfo.team-c in namespace "team-c"; nothing was changed`)
			require.ErrorContains(t, err, `add "team-c" to this worker's namespaces`)
			var ae *temporal.ApplicationError
			require.ErrorAs(t, err, &ae)
			require.True(t, ae.NonRetryable(), "retrying cannot grant a namespace")
		})
	}
}

// CheckReady only observes: a workload not ready is a result with the reason, however long it has been so (the
// progress deadline is the workflow's to judge, on one clock).
func TestCheckReadyObservesAndLeavesTheDeadlineToTheWorkflow(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	w := &Workloads{Kube: &fakeKube{}}
	env.RegisterActivity(w)
	c := testCanary()

	v, err := env.ExecuteActivity(w.CheckReady, ReadyInput{Canary: c, Workload: WorkloadCanary})
	require.NoError(t, err)
	var got ReadyResult
	require.NoError(t, v.Get(&got))
	require.Equal(t, ReadyResult{Ready: false, Reason: "waiting for rollout to finish"}, got)
}

func TestWorkloadErrorsRetryUnlessPermanent(t *testing.T) {
	notFound := apierrors.NewNotFound(schema.GroupResource{Group: "apps", Resource: "deployments"}, "podinfo")
	for _, tc := range []struct {
		name     string
		err      error
		wantType string // "" = retryable plain error
	}{
		{"transient", errors.New("connection refused"), ""},
		{"permanent", permanentErr{}, ErrTypePermanent},
		{"not found", notFound, ErrTypeNotFound},
		{"permanent before any write", kubeobj.BeforeWrite(permanentErr{}), ErrTypeRefused},
		{"transient before any write is still retried", kubeobj.BeforeWrite(errors.New("connection refused")), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := classify(tc.err, "scale up podinfo.test")
			require.ErrorIs(t, err, tc.err)
			var ae *temporal.ApplicationError
			if tc.wantType == "" {
				require.False(t, errors.As(err, &ae))
				return
			}
			require.ErrorAs(t, err, &ae)
			require.True(t, ae.NonRetryable())
			require.Equal(t, tc.wantType, ae.Type())
		})
	}
}

// A request the API server refuses for missing rights fails the activity at once (Temporal does not retry it for
// minutes), and the message names the verb, resource and namespace to grant.
func TestRefusedKubernetesRequestsFailAtOnceNamingTheRightToGrant(t *testing.T) {
	deployments := schema.GroupResource{Group: "apps", Resource: "deployments"}
	for _, tc := range []struct {
		name string
		err  error
		want []string
	}{
		{"forbidden by RBAC", apierrors.NewForbidden(deployments, "podinfo", errors.New(
			`User "system:serviceaccount:canaryflow:canaryflow-worker" cannot patch resource "deployments/scale" in API group "apps" in the namespace "test"`)),
			[]string{"scale up podinfo.test: ", `deployments.apps "podinfo" is forbidden`,
				"canaryflow's worker may not patch deployments/scale.apps in namespace test: grant it in its Role or ClusterRole, see deploy/rbac"}},
		{"forbidden at the cluster scope", apierrors.NewForbidden(schema.GroupResource{Resource: "namespaces"}, "test", errors.New(
			`User "system:serviceaccount:canaryflow:canaryflow-worker" cannot get resource "namespaces" in API group "" at the cluster scope`)),
			[]string{"canaryflow's worker may not get namespaces at the cluster scope"}},
		{"forbidden by an admission plugin", apierrors.NewForbidden(deployments, "podinfo", errors.New("exceeded quota: compute")),
			[]string{"exceeded quota: compute", "the API server forbids this request on deployments.apps"}},
		{"unauthorized", apierrors.NewUnauthorized("Unauthorized"),
			[]string{"scale up podinfo.test: Unauthorized", "refused the worker's credentials"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			env := s.NewTestActivityEnvironment()
			w := &Workloads{Kube: &fakeKube{err: tc.err}}
			env.RegisterActivity(w)

			_, err := env.ExecuteActivity(w.ScaleCanary, ScaleInput{Canary: testCanary(), Up: true})

			var ae *temporal.ApplicationError
			require.ErrorAs(t, err, &ae)
			require.True(t, ae.NonRetryable(), "a refused request is not retried")
			require.Equal(t, ErrTypeForbidden, ae.Type())
			for _, want := range tc.want {
				require.Contains(t, ae.Error(), want)
			}
		})
	}
}

type fakeRouters struct{ set [][3]int }

func (f *fakeRouters) Get(provider string) (router.Router, error) {
	if provider != "traefik" {
		return nil, errors.New("unknown provider")
	}
	return f, nil
}
func (f *fakeRouters) Reconcile(context.Context, *v1beta1.Canary) error { return nil }
func (f *fakeRouters) SetRoutes(_ context.Context, _ *v1beta1.Canary, p, c int, m bool) error {
	mi := 0
	if m {
		mi = 1
	}
	f.set = append(f.set, [3]int{p, c, mi})
	return nil
}
func (f *fakeRouters) GetRoutes(context.Context, *v1beta1.Canary) (int, int, bool, error) {
	return 100, 0, false, nil
}
func (f *fakeRouters) Finalize(context.Context, *v1beta1.Canary) error { return nil }

func TestSetRoutesRefusesASplitThatDoesNotSumTo100AndUnknownProviders(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	routers := &fakeRouters{}
	r := &Routing{Routers: routers}
	env.RegisterActivity(r)
	c := testCanary()

	_, err := env.ExecuteActivity(r.SetRoutes, RoutesInput{Canary: c, PrimaryWeight: 90, CanaryWeight: 20})
	require.Equal(t, ErrTypePermanent, appErrType(t, err))

	_, err = env.ExecuteActivity(r.SetRoutes, RoutesInput{Canary: c, PrimaryWeight: 90, CanaryWeight: 10})
	require.NoError(t, err)
	require.Equal(t, [][3]int{{90, 10, 0}}, routers.set)

	c.Spec.Provider = "nosuch"
	_, err = env.ExecuteActivity(r.SetRoutes, RoutesInput{Canary: c, PrimaryWeight: 100})
	require.Equal(t, ErrTypeUnsupportedProvider, appErrType(t, err))
}
