package workload

import (
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryflow/canaryflow/providers/kubeobj"
)

func TestSelectorLabelPrefersAppThenNameThenKubernetesName(t *testing.T) {
	for _, tc := range []struct {
		name      string
		match     map[string]string
		key, val  string
		wantError bool
	}{
		{"app", map[string]string{"app": "podinfo", "name": "x"}, "app", "podinfo", false},
		{"name", map[string]string{"name": "podinfo"}, "name", "podinfo", false},
		{"app.kubernetes.io/name", map[string]string{"app.kubernetes.io/name": "podinfo", "tier": "web"}, "app.kubernetes.io/name", "podinfo", false},
		{"none", map[string]string{"tier": "web"}, "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, v, err := selectorLabel("Deployment", "ns", "podinfo", &metav1.LabelSelector{MatchLabels: tc.match})
			if tc.wantError {
				require.Error(t, err)
				require.Contains(t, err.Error(), "Deployment ns/podinfo")
				require.True(t, err.(*kubeobj.PermanentError).Permanent())
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.key, k)
			require.Equal(t, tc.val, v)
		})
	}
}

func TestPrimaryTemplateRenamesSelectorsConfigsAndSpread(t *testing.T) {
	optional := true
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "podinfo"}}
	d.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "podinfo"}}
	d.Spec.Template.Labels = map[string]string{"app": "podinfo", "tier": "web"}
	spec := &d.Spec.Template.Spec
	spec.NodeSelector = map[string]string{ScaleToZeroNodeSelector: "true"}
	spec.Volumes = []corev1.Volume{
		{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
		{Name: "proj", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}}},
		}}}},
	}
	spec.Containers = []corev1.Container{{Name: "c",
		Env: []corev1.EnvVar{
			{Name: "A", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "a"}}},
			{Name: "B", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "untracked"}, Key: "b", Optional: &optional}}},
		},
		EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}}}},
	}}
	spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "podinfo", "tier": "podinfo"}}}}
	spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{LabelSelector: &metav1.LabelSelector{
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"other", "podinfo"}}},
		}}},
		PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{PodAffinityTerm: corev1.PodAffinityTerm{LabelSelector: &metav1.LabelSelector{
			MatchLabels: map[string]string{"app.kubernetes.io/name": "podinfo"},
		}}}},
	}}

	require.Equal(t, []configKey{{kindConfigMap, "cfg"}, {kindSecret, "sec"}, {kindSecret, "untracked"}}, referencedConfigs(spec))
	tracked := []trackedConfig{{configKey: configKey{kindConfigMap, "cfg"}}, {configKey: configKey{kindSecret, "sec"}}}
	tg := &target{workload: &workload{kind: KindDeployment, dep: d}, key: "app", value: "podinfo"}
	p := primaryTemplate(tg, tracked)

	require.Equal(t, map[string]string{"app": "podinfo-primary", "tier": "web"}, p.Labels)
	require.Nil(t, p.Spec.NodeSelector, "the scale-to-zero node selector is not cloned")
	require.Equal(t, "cfg-primary", p.Spec.Volumes[0].ConfigMap.Name)
	require.Equal(t, "sec-primary", p.Spec.Volumes[1].Projected.Sources[0].Secret.Name)
	require.Equal(t, "cfg-primary", p.Spec.Containers[0].Env[0].ValueFrom.ConfigMapKeyRef.Name)
	require.Equal(t, "untracked", p.Spec.Containers[0].Env[1].ValueFrom.SecretKeyRef.Name, "configs not tracked keep their name")
	require.Equal(t, "sec-primary", p.Spec.Containers[0].EnvFrom[0].SecretRef.Name)
	require.Equal(t, map[string]string{"app": "podinfo-primary", "tier": "podinfo"}, p.Spec.TopologySpreadConstraints[0].LabelSelector.MatchLabels,
		"only selector label keys are renamed")
	require.Equal(t, []string{"other", "podinfo-primary"}, p.Spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution[0].LabelSelector.MatchExpressions[0].Values)
	require.Equal(t, "podinfo-primary", p.Spec.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.LabelSelector.MatchLabels["app.kubernetes.io/name"])
	// The target is untouched.
	require.Equal(t, "cfg", spec.Volumes[0].ConfigMap.Name)
	require.Equal(t, "podinfo", spec.TopologySpreadConstraints[0].LabelSelector.MatchLabels["app"])
}

func TestRevisionChangesWithTemplateAndConfigDataOnly(t *testing.T) {
	tmpl := &corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "podinfo:6.0.0"}}}}
	cm := func(v string) []trackedConfig {
		return []trackedConfig{{configKey: configKey{kindConfigMap, "cfg"}, cm: &corev1.ConfigMap{Data: map[string]string{"k": v}}}}
	}
	base := revision(tmpl, cm("1"))
	require.Len(t, base, 16)
	require.Equal(t, base, revision(tmpl.DeepCopy(), cm("1")), "stable")
	require.NotEqual(t, base, revision(tmpl, cm("2")), "config data counts")
	parked := tmpl.DeepCopy()
	parked.Spec.NodeSelector = map[string]string{ScaleToZeroNodeSelector: "true"}
	require.Equal(t, base, revision(parked, cm("1")), "a parked DaemonSet keeps its revision")
	changed := tmpl.DeepCopy()
	changed.Spec.Containers[0].Image = "podinfo:6.0.1"
	require.NotEqual(t, base, revision(changed, cm("1")))
}

func TestDeploymentReadyAppliesThreshold(t *testing.T) {
	three := int32(3)
	dep := func(updated, ready, total int32) *appsv1.Deployment {
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "p", Generation: 2}}
		d.Spec.Replicas = &three
		d.Status = appsv1.DeploymentStatus{ObservedGeneration: 2, UpdatedReplicas: updated, AvailableReplicas: ready, Replicas: total}
		return d
	}
	for _, tc := range []struct {
		name      string
		d         *appsv1.Deployment
		threshold int
		ready     bool
		reason    string
	}{
		{"all available", dep(3, 3, 3), 100, true, ""},
		{"not updated", dep(1, 1, 3), 100, false, "1 out of 3 new replicas have been updated"},
		{"old pending", dep(3, 3, 4), 100, false, "1 old replicas are pending termination"},
		{"unavailable", dep(3, 2, 3), 100, false, "2 of 3 updated replicas are available"},
		{"threshold met", dep(3, 2, 3), 50, true, ""},
		{"threshold not met", dep(3, 1, 3), 50, false, "1 of 3 updated replicas are available"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, reason := deploymentReady(tc.d, tc.threshold)
			require.Equal(t, tc.ready, ok)
			require.Contains(t, reason, tc.reason)
		})
	}
	stale := dep(3, 3, 3)
	stale.Generation = 3
	ok, reason := deploymentReady(stale, 100)
	require.False(t, ok)
	require.Contains(t, reason, "generation")
}
