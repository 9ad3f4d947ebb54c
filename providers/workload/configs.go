package workload

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryflow/canaryflow/providers/kubeobj"
)

// Kinds of tracked configs.
const (
	kindConfigMap = "ConfigMap"
	kindSecret    = "Secret"
)

// configKey names a ConfigMap or Secret the pod template references.
type configKey struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
}

// trackedConfig is a referenced ConfigMap or Secret that the primary gets a "-primary" copy of.
type trackedConfig struct {
	configKey
	cm     *corev1.ConfigMap
	secret *corev1.Secret
}

// dataHash is the checksum of the config's data (what the pods see).
func (t trackedConfig) dataHash() string {
	var b []byte
	if t.cm != nil {
		b, _ = json.Marshal([]any{t.cm.Data, t.cm.BinaryData})
	} else {
		b, _ = json.Marshal([]any{t.secret.Type, t.secret.Data})
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// referencedConfigs lists the ConfigMaps and Secrets a pod spec references through env, envFrom, volumes and
// projected volumes (containers and init containers), sorted and without duplicates.
func referencedConfigs(spec *corev1.PodSpec) []configKey {
	seen := map[configKey]bool{}
	add := func(kind, name string) {
		if name != "" {
			seen[configKey{kind, name}] = true
		}
	}
	for _, v := range spec.Volumes {
		if v.ConfigMap != nil {
			add(kindConfigMap, v.ConfigMap.Name)
		}
		if v.Secret != nil {
			add(kindSecret, v.Secret.SecretName)
		}
		if v.Projected != nil {
			for _, s := range v.Projected.Sources {
				if s.ConfigMap != nil {
					add(kindConfigMap, s.ConfigMap.Name)
				}
				if s.Secret != nil {
					add(kindSecret, s.Secret.Name)
				}
			}
		}
	}
	for _, cs := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for _, c := range cs {
			for _, e := range c.Env {
				if e.ValueFrom == nil {
					continue
				}
				if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
					add(kindConfigMap, r.Name)
				}
				if r := e.ValueFrom.SecretKeyRef; r != nil {
					add(kindSecret, r.Name)
				}
			}
			for _, e := range c.EnvFrom {
				if e.ConfigMapRef != nil {
					add(kindConfigMap, e.ConfigMapRef.Name)
				}
				if e.SecretRef != nil {
					add(kindSecret, e.SecretRef.Name)
				}
			}
		}
	}
	out := make([]configKey, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// rewriteConfigRefs renames the references to tracked configs to their "-primary" copies.
func rewriteConfigRefs(spec *corev1.PodSpec, tracked []trackedConfig) {
	is := map[configKey]bool{}
	for _, t := range tracked {
		is[t.configKey] = true
	}
	ren := func(kind string, name *string) {
		if is[configKey{kind, *name}] {
			*name = primaryValue(*name)
		}
	}
	for i := range spec.Volumes {
		v := &spec.Volumes[i]
		if v.ConfigMap != nil {
			ren(kindConfigMap, &v.ConfigMap.Name)
		}
		if v.Secret != nil {
			ren(kindSecret, &v.Secret.SecretName)
		}
		if v.Projected != nil {
			for j := range v.Projected.Sources {
				s := &v.Projected.Sources[j]
				if s.ConfigMap != nil {
					ren(kindConfigMap, &s.ConfigMap.Name)
				}
				if s.Secret != nil {
					ren(kindSecret, &s.Secret.Name)
				}
			}
		}
	}
	for _, cs := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range cs {
			c := &cs[i]
			for j := range c.Env {
				e := &c.Env[j]
				if e.ValueFrom == nil {
					continue
				}
				if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
					ren(kindConfigMap, &r.Name)
				}
				if r := e.ValueFrom.SecretKeyRef; r != nil {
					ren(kindSecret, &r.Name)
				}
			}
			for j := range c.EnvFrom {
				e := &c.EnvFrom[j]
				if e.ConfigMapRef != nil {
					ren(kindConfigMap, &e.ConfigMapRef.Name)
				}
				if e.SecretRef != nil {
					ren(kindSecret, &e.SecretRef.Name)
				}
			}
		}
	}
}

func trackingDisabled(m metav1.Object) bool {
	a := m.GetAnnotations()
	return a[ConfigTrackingAnnotation] == "disabled" || a["flagger.app/config-tracking"] == "disabled"
}

// trackableSecret says whether a Secret type is copied for the primary. Registry and service-account secrets
// are not (as in Flagger): they belong to the ServiceAccount, not to the application's configuration.
func trackableSecret(t corev1.SecretType) bool {
	switch t {
	case "", corev1.SecretTypeOpaque, corev1.SecretTypeBasicAuth, corev1.SecretTypeSSHAuth, corev1.SecretTypeTLS:
		return true
	}
	return false
}

// ConfigSource reads ConfigMaps and Secrets, from the API server or from an informer's cache; found is false when
// the object does not exist. The activities read the API; the GitOps trigger reads its cache, and both compute a
// revision with the same rule (Revision).
type ConfigSource interface {
	ConfigMap(ctx context.Context, namespace, name string) (cm *corev1.ConfigMap, found bool, err error)
	Secret(ctx context.Context, namespace, name string) (s *corev1.Secret, found bool, err error)
}

// Revision is the revision of a pod template in namespace: the checksum of the template and of the data of the
// ConfigMaps and Secrets it tracks, exactly as DetectRevision computes the target's.
func Revision(ctx context.Context, src ConfigSource, namespace string, tmpl *corev1.PodTemplateSpec) (string, error) {
	cfgs, err := trackedConfigs(ctx, src, namespace, &tmpl.Spec)
	if err != nil {
		return "", err
	}
	return revision(tmpl, cfgs), nil
}

// PrimaryName is the name canaryflow gives the primary of the target named target.
func PrimaryName(target string) string { return primaryValue(target) }

// apiConfigs reads configs from the API server.
type apiConfigs struct{ k *Client }

func (a apiConfigs) ConfigMap(ctx context.Context, namespace, name string) (*corev1.ConfigMap, bool, error) {
	cm, err := a.k.kube.CoreV1().ConfigMaps(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, kubeobj.APIError("get", kindConfigMap, namespace, name, err)
	}
	return cm, true, nil
}

func (a apiConfigs) Secret(ctx context.Context, namespace, name string) (*corev1.Secret, bool, error) {
	s, err := a.k.kube.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, kubeobj.APIError("get", kindSecret, namespace, name, err)
	}
	return s, true, nil
}

// readConfigs reads the configs a pod spec references from the API server and returns those that are tracked.
func (k *Client) readConfigs(ctx context.Context, namespace string, spec *corev1.PodSpec) ([]trackedConfig, error) {
	return trackedConfigs(ctx, apiConfigs{k}, namespace, spec)
}

// trackedConfigs returns the configs a pod spec references that are tracked. A reference to a config that does not
// exist is skipped (the pod cannot start anyway, and Kubernetes says why), as Flagger does.
func trackedConfigs(ctx context.Context, src ConfigSource, namespace string, spec *corev1.PodSpec) ([]trackedConfig, error) {
	var out []trackedConfig
	for _, key := range referencedConfigs(spec) {
		switch key.Kind {
		case kindConfigMap:
			cm, found, err := src.ConfigMap(ctx, namespace, key.Name)
			if err != nil {
				return nil, err
			}
			if found && !trackingDisabled(cm) {
				out = append(out, trackedConfig{configKey: key, cm: cm})
			}
		case kindSecret:
			s, found, err := src.Secret(ctx, namespace, key.Name)
			if err != nil {
				return nil, err
			}
			if found && !trackingDisabled(s) && trackableSecret(s.Type) {
				out = append(out, trackedConfig{configKey: key, secret: s})
			}
		}
	}
	return out, nil
}
