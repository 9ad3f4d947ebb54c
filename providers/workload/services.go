package workload

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
)

// servicePorts are the ports of the generated Services: spec.service's port, then with portDiscovery every other
// container port of the pod template (Flagger's naming: the port's name, else tcp-<container>-<index>).
func servicePorts(c *v1beta1.Canary, tmpl *corev1.PodTemplateSpec) []corev1.ServicePort {
	s := c.Spec.Service
	target := s.TargetPort
	if target.Type == intstr.Int && target.IntVal == 0 {
		target = intstr.FromInt32(s.Port)
	}
	name := s.PortName
	if name == "" {
		name = v1beta1.DefaultPortName
	}
	main := corev1.ServicePort{Name: name, Protocol: corev1.ProtocolTCP, Port: s.Port, TargetPort: target}
	if s.AppProtocol != "" {
		ap := s.AppProtocol
		main.AppProtocol = &ap
	}
	ports := []corev1.ServicePort{main}
	if !s.PortDiscovery || tmpl == nil {
		return ports
	}
	var extra []corev1.ServicePort
	for _, ctr := range tmpl.Spec.Containers {
		if ctr.Name == "istio-proxy" || ctr.Name == "envoy" {
			continue
		}
		for i, p := range ctr.Ports {
			if (target.Type == intstr.Int && p.ContainerPort == target.IntVal) ||
				(target.Type == intstr.String && p.Name == target.StrVal) || p.ContainerPort == s.Port {
				continue
			}
			n := p.Name
			if n == "" {
				n = fmt.Sprintf("tcp-%s-%d", ctr.Name, i)
			}
			proto := p.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			extra = append(extra, corev1.ServicePort{Name: n, Protocol: proto, Port: p.ContainerPort, TargetPort: intstr.FromInt32(p.ContainerPort)})
		}
	}
	sort.Slice(extra, func(i, j int) bool { return extra[i].Name < extra[j].Name })
	return append(ports, extra...)
}

// serviceObject builds one of the generated ClusterIP Services: name, the selector label of the pods it selects,
// the custom metadata of spec.service.{apex,primary,canary}, and spec.service's headless and trafficDistribution
// (as Flagger, all three Services are headless or none is).
func serviceObject(c *v1beta1.Canary, name string, selector map[string]string, meta *v1beta1.CustomMetadata, ports []corev1.ServicePort) *corev1.Service {
	var extraL, extraA map[string]string
	if meta != nil {
		extraL, extraA = meta.Labels, meta.Annotations
	}
	for k := range selector {
		merged := map[string]string{k: name}
		for kk, vv := range extraL {
			merged[kk] = vv
		}
		extraL = merged
	}
	labels, annotations := kubeobj.Marker(c, extraL, extraA)
	spec := corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Selector: selector, Ports: ports}
	if c.Spec.Service.Headless {
		spec.ClusterIP = corev1.ClusterIPNone
	}
	if td := c.Spec.Service.TrafficDistribution; td != "" {
		spec.TrafficDistribution = &td
	}
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: c.Namespace, Labels: labels, Annotations: annotations},
		Spec:       spec,
	}
}

// checkHeadless refuses to apply a Service whose headlessness would change: a Service's clusterIP is immutable,
// so the API server would refuse it anyway, with a message that does not name the Canary's field.
func checkHeadless(c *v1beta1.Canary, live *corev1.Service) error {
	if live == nil || !kubeobj.IsManaged(live) {
		return nil
	}
	if is, want := live.Spec.ClusterIP == corev1.ClusterIPNone, c.Spec.Service.Headless; is != want {
		return kubeobj.Permanentf("Service %s/%s has headless=%t but spec.service.headless is %t: a Service's clusterIP cannot "+
			"change, so delete the Service (canaryflow makes it again) or set spec.service.headless: %t", live.Namespace, live.Name, is, want, is)
	}
	return nil
}

// services builds the apex, primary and canary Services; the apex selects apexValue (the primary's pods unless a
// blue/green switch moved it).
func services(c *v1beta1.Canary, t *target, apexValue string) []*corev1.Service {
	apex, primary, canary := c.ServiceNames()
	ports := servicePorts(c, t.template())
	s := c.Spec.Service
	return []*corev1.Service{
		serviceObject(c, apex, map[string]string{t.key: apexValue}, s.Apex, ports),
		serviceObject(c, primary, map[string]string{t.key: primaryValue(t.value)}, s.Primary, ports),
		serviceObject(c, canary, map[string]string{t.key: t.value}, s.Canary, ports),
	}
}

func (k *Client) applyService(ctx context.Context, svc *corev1.Service) error {
	data, err := json.Marshal(svc)
	if err != nil {
		return fmt.Errorf("encode Service %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	_, err = k.kube.CoreV1().Services(svc.Namespace).Patch(ctx, svc.Name, types.ApplyPatchType, data, applyOptions())
	return kubeobj.APIError("apply", "Service", svc.Namespace, svc.Name, err)
}

// SwitchApex points the apex Service at the primary's pods (toPrimary) or at the target's: the blue/green switch of
// the kubernetes router. The apex is applied whole, as Initialize writes it, so the Service keeps one owner.
// Already switched costs one read.
func (k *Client) SwitchApex(ctx context.Context, c *v1beta1.Canary, toPrimary bool) error {
	apex, _, _ := c.ServiceNames()
	live, err := k.kube.CoreV1().Services(c.Namespace).Get(ctx, apex, metav1.GetOptions{})
	if err != nil {
		return kubeobj.APIError("get", "Service", c.Namespace, apex, err)
	}
	if !kubeobj.IsManaged(live) {
		return kubeobj.NotOurs("Service", c.Namespace, apex, "delete it or rename spec.service.name")
	}
	for _, key := range SelectorLabels {
		if v, ok := live.Spec.Selector[key]; ok && len(live.Spec.Selector) == 1 && strings.HasSuffix(v, "-primary") == toPrimary {
			return nil
		}
	}
	t, err := k.getTarget(ctx, c)
	if err != nil {
		return err
	}
	want := t.value
	if toPrimary {
		want = primaryValue(t.value)
	}
	return k.applyService(ctx, services(c, t, want)[0])
}
