// Package workloadtest gives lab tests of the workload and router providers what they share: a client config
// that holds only the worker's RBAC role (deploy/rbac/clusterrole.yaml), a counter of API requests, and a podinfo
// target Deployment with a ConfigMap, a Secret and an autoscaler.
package workloadtest

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

// ClusterRolePath is the worker's ClusterRole in the repository.
func ClusterRolePath(t testing.TB) string {
	_, file, _, ok := runtime.Caller(0)
	require.True(t, ok)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "deploy", "rbac", "clusterrole.yaml")
}

// RolePath is the worker's namespaced Role in the repository (deploy/namespaced: no ClusterRole).
func RolePath(t testing.TB) string {
	return filepath.Join(filepath.Dir(ClusterRolePath(t)), "..", "namespaced", "rbac", "role.yaml")
}

// NamespacedWorkerConfig returns a client config for the API server of admin authenticated as a fresh
// ServiceAccount of namespace saNS bound, in each of namespaces only, to the worker's namespaced Role
// (deploy/namespaced/rbac/role.yaml, applied there as a user would) by a RoleBinding; nothing cluster-wide.
func NamespacedWorkerConfig(t testing.TB, admin *rest.Config, saNS string, namespaces ...string) *rest.Config {
	t.Helper()
	adminCS, err := kubernetes.NewForConfig(admin)
	require.NoError(t, err)
	ctx := context.Background()
	raw, err := os.ReadFile(RolePath(t))
	require.NoError(t, err)
	var role rbacv1.Role
	require.NoError(t, yaml.UnmarshalStrict(raw, &role))
	const sa = "canaryflow-namespaced"
	_, err = adminCS.CoreV1().ServiceAccounts(saNS).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{})
	require.NoError(t, err)
	for _, ns := range namespaces {
		r := role.DeepCopy()
		r.Namespace = ns
		_, err = adminCS.RbacV1().Roles(ns).Create(ctx, r, metav1.CreateOptions{})
		require.NoError(t, err)
		_, err = adminCS.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: role.Name, Namespace: ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: saNS}},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	expiry := int64(3600)
	tok, err := adminCS.CoreV1().ServiceAccounts(saNS).CreateToken(ctx, sa,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
	require.NoError(t, err)
	cfg := rest.AnonymousClientConfig(admin)
	cfg.BearerToken = tok.Status.Token
	cs, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	// The RBAC authorizer learns of new bindings through a watch: wait until every Role is in force.
	for _, ns := range namespaces {
		require.Eventually(t, func() bool {
			_, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
			return err == nil
		}, 20*time.Second, 100*time.Millisecond, "the worker Role in %s never took effect", ns)
	}
	return cfg
}

// TokenConfig returns a client config for the API server of admin authenticated as ServiceAccount sa of namespace
// ns, by a token of an hour the API server issues for it.
func TokenConfig(t testing.TB, admin *rest.Config, ns, sa string) *rest.Config {
	t.Helper()
	adminCS, err := kubernetes.NewForConfig(admin)
	require.NoError(t, err)
	expiry := int64(3600)
	tok, err := adminCS.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), sa,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
	require.NoError(t, err)
	cfg := rest.AnonymousClientConfig(admin)
	cfg.BearerToken = tok.Status.Token
	return cfg
}

// WorkerConfig returns a client config for the API server of admin (an administrator's config) authenticated as a
// fresh ServiceAccount of namespace ns bound only to a copy of the worker's ClusterRole (same rules, a name of its
// own); the role and binding are removed at the end.
func WorkerConfig(t testing.TB, admin *rest.Config, ns string) *rest.Config {
	t.Helper()
	adminCS, err := kubernetes.NewForConfig(admin)
	require.NoError(t, err)
	ctx := context.Background()

	raw, err := os.ReadFile(ClusterRolePath(t))
	require.NoError(t, err)
	var role rbacv1.ClusterRole
	require.NoError(t, yaml.UnmarshalStrict(raw, &role))
	name := role.Name + "-" + ns
	role.ObjectMeta = metav1.ObjectMeta{Name: name}
	_, err = adminCS.RbacV1().ClusterRoles().Create(ctx, &role, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = adminCS.RbacV1().ClusterRoles().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	_, err = adminCS.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "canaryflow"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = adminCS.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "canaryflow", Namespace: ns}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = adminCS.RbacV1().ClusterRoleBindings().Delete(context.Background(), name, metav1.DeleteOptions{})
	})

	cfg := TokenConfig(t, admin, ns, "canaryflow")
	// The RBAC authorizer learns of new bindings through a watch: wait until the role is in force.
	cs, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
		return err == nil
	}, 20*time.Second, 100*time.Millisecond, "the worker role never took effect")
	// And it is really limited: no access to what the role does not name.
	_, err = cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	require.True(t, apierrors.IsForbidden(err), "the worker role must not allow listing pods: %v", err)
	return cfg
}

// Counter counts the API requests made through a config it wrapped.
type Counter struct {
	mu       sync.Mutex
	requests []string
}

// Count returns a copy of cfg whose requests c counts.
func (c *Counter) Count(cfg *rest.Config) *rest.Config {
	out := rest.CopyConfig(cfg)
	out.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(r *http.Request) (*http.Response, error) {
			c.mu.Lock()
			c.requests = append(c.requests, r.Method+" "+r.URL.Path)
			c.mu.Unlock()
			return rt.RoundTrip(r)
		})
	})
	return out
}

// Take returns the requests counted since the last Take and resets the count.
func (c *Counter) Take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.requests
	c.requests = nil
	return out
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Podinfo is a target Deployment "name" running podinfo at tag with replicas, selected by app=name, that reads a
// ConfigMap and a Secret named "<name>-config" and "<name>-secret" (env, envFrom and volumes) and spreads against
// itself (anti-affinity and a topology spread constraint naming its pods).
func Podinfo(namespace, name, tag string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}
	cfg, sec := name+"-config", name+"-secret"
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{
						Name: "podinfo", Image: "ghcr.io/stefanprodan/podinfo:" + tag,
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 9898}, {Name: "grpc", ContainerPort: 9999}},
						Env: []corev1.EnvVar{{Name: "PODINFO_UI_COLOR", ValueFrom: &corev1.EnvVarSource{
							ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: cfg}, Key: "color"},
						}}},
						EnvFrom:      []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: sec}}}},
						VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/etc/podinfo"}},
					}},
					Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{
						ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: cfg}},
					}}},
					Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
						PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{Weight: 100, PodAffinityTerm: corev1.PodAffinityTerm{
							LabelSelector: sel.DeepCopy(), TopologyKey: "kubernetes.io/hostname",
						}}},
					}},
					TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{
						MaxSkew: 1, TopologyKey: "kubernetes.io/hostname", WhenUnsatisfiable: corev1.ScheduleAnyway, LabelSelector: sel.DeepCopy(),
					}},
				},
			},
		},
	}
}

// CreatePodinfo creates Podinfo's Deployment with its ConfigMap and Secret, and with minReplicas an autoscaler
// named like the Deployment (autoscaling/v2, CPU 80%, max minReplicas+2).
func CreatePodinfo(t testing.TB, admin kubernetes.Interface, namespace, name, tag string, replicas, minReplicas int32) *appsv1.Deployment {
	t.Helper()
	ctx := context.Background()
	_, err := admin.CoreV1().ConfigMaps(namespace).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-config", Namespace: namespace, Labels: map[string]string{"team": "a"}},
		Data:       map[string]string{"color": "#34577c"},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = admin.CoreV1().Secrets(namespace).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-secret", Namespace: namespace},
		StringData: map[string]string{"PODINFO_TOKEN": "s3cr3t"},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	d, err := admin.AppsV1().Deployments(namespace).Create(ctx, Podinfo(namespace, name, tag, replicas), metav1.CreateOptions{})
	require.NoError(t, err)
	if minReplicas > 0 {
		cpu := int32(80)
		_, err = admin.AutoscalingV2().HorizontalPodAutoscalers(namespace).Create(ctx, &autoscalingv2.HorizontalPodAutoscaler{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
				ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
				MinReplicas:    &minReplicas, MaxReplicas: minReplicas + 2,
				Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
					Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &cpu},
				}}},
			},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	return d
}
