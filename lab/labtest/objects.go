package labtest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// The resources of the lab's Traefik and Gateway API CRDs, for dynamic clients.
var (
	IngressRoutes   = schema.GroupVersionResource{Group: "traefik.io", Version: "v1alpha1", Resource: "ingressroutes"}
	TraefikServices = schema.GroupVersionResource{Group: "traefik.io", Version: "v1alpha1", Resource: "traefikservices"}
	HTTPRoutes      = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"}
)

// SetImage changes the image of a Deployment's first container as a user would: on its latest version, again
// when the Deployment controller wrote its status in between.
func SetImage(t testing.TB, cs kubernetes.Interface, ns, name, image string) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := cs.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		d.Spec.Template.Spec.Containers[0].Image = image
		_, err = cs.AppsV1().Deployments(ns).Update(context.Background(), d, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("set the image of Deployment %s/%s to %s: %v", ns, name, image, err)
	}
}

// Podinfo is a plain podinfo Deployment: container podinfod running image, port "http" 9898, pods labelled app=app.
// The lab's podnet runs the podinfo version of the image's tag for each of its pods.
func Podinfo(ns, name, app, image string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": app}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:  "podinfod",
					Image: image,
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 9898}},
				}}},
			},
		},
	}
}

// Service is a Service name on port 80 ("http") to the pods labelled app=app, at their port named http.
func Service(ns, name, app string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": app},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
		},
	}
}

// Backend is one Service of a weighted TraefikService (on the Service's port 80).
type Backend struct {
	Service string
	Weight  int64
}

// TraefikService is a TraefikService weighted over backends, as canaryflow's traefik router writes one.
func TraefikService(ns, name string, backends ...Backend) *unstructured.Unstructured {
	services := []any{}
	for _, b := range backends {
		services = append(services, map[string]any{"name": b.Service, "port": int64(80), "weight": b.Weight})
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "traefik.io/v1alpha1",
		"kind":       "TraefikService",
		"metadata":   map[string]any{"name": name, "namespace": ns},
		"spec":       map[string]any{"weighted": map[string]any{"services": services}},
	}}
}

// IngressRoute is an IngressRoute on the lab's entrypoint "web" that sends the requests for host to service, a
// Traefik service reference such as {"name": "podinfo", "kind": "TraefikService"}.
func IngressRoute(ns, name, host string, service map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "traefik.io/v1alpha1",
		"kind":       "IngressRoute",
		"metadata":   map[string]any{"name": name, "namespace": ns},
		"spec": map[string]any{
			"entryPoints": []any{"web"},
			"routes": []any{map[string]any{
				"kind":     "Rule",
				"match":    fmt.Sprintf("Host(`%s`)", host),
				"services": []any{service},
			}},
		},
	}}
}

// ServeCanary deploys podinfo 6.0.1 as Deployment "podinfo" with Service "podinfo-canary", routes Host host to it
// through a TraefikService "podinfo" weighted 100 % to the canary (as canaryflow's traefik router writes it, so
// Traefik's metrics name the Service <ns>-podinfo-canary-80@kubernetescrd), and waits until Traefik serves it.
func ServeCanary(t testing.TB, ns, host string) {
	t.Helper()
	ctx := context.Background()
	_, cs := Kube(t)
	dyn := Dynamic(t)
	_, err := cs.AppsV1().Deployments(ns).Create(ctx, Podinfo(ns, "podinfo", "podinfo", "ghcr.io/stefanprodan/podinfo:6.0.1", 1), metav1.CreateOptions{})
	if err == nil {
		_, err = cs.CoreV1().Services(ns).Create(ctx, Service(ns, "podinfo-canary", "podinfo"), metav1.CreateOptions{})
	}
	if err == nil {
		_, err = dyn.Resource(TraefikServices).Namespace(ns).Create(ctx,
			TraefikService(ns, "podinfo", Backend{Service: "podinfo-canary", Weight: 100}), metav1.CreateOptions{})
	}
	if err == nil {
		_, err = dyn.Resource(IngressRoutes).Namespace(ns).Create(ctx,
			IngressRoute(ns, "podinfo", host, map[string]any{"name": "podinfo", "kind": "TraefikService"}), metav1.CreateOptions{})
	}
	if err != nil {
		t.Fatalf("labtest: serving the canary in %s: %v", ns, err)
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	status := 0
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, Lab(t).TraefikURL+"/version", nil)
		req.Host = host
		if resp, err := hc.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if status = resp.StatusCode; status == http.StatusOK {
				return
			}
		}
	}
	t.Fatalf("labtest: Traefik did not serve %s within 90 s (last status %d)", host, status)
}

// TutorialIngress is the user's Ingress of Flagger's NGINX tutorial: host app.example.com to the apex Service.
func TutorialIngress(ns string) *networkingv1.Ingress {
	prefix := networkingv1.PathTypePrefix
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: ns, Labels: map[string]string{"app": "podinfo"},
			Annotations: map[string]string{"kubernetes.io/ingress.class": "nginx"}},
		Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{
			Host: "app.example.com",
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
				Path: "/", PathType: &prefix,
				Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
					Name: "podinfo", Port: networkingv1.ServiceBackendPort{Number: 80}}},
			}}}},
		}}},
	}
}
