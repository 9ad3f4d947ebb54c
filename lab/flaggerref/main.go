// Command flaggerref runs Flagger's own router (github.com/fluxcd/flagger v1.36.1) for one Canary against fake
// clients and prints the objects it leaves, so tests can hold canaryflow's routers to Flagger's names and fields.
// It is a reference, never part of canaryflow: its module is separate so Flagger's dependencies stay out of ours.
//
// Usage: flaggerref -canary canary.yaml -weights 90,10 prints {"<Kind>/<name>": object, ...} as JSON after
// Reconcile and SetRoutes(90, 10).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	flaggerv1 "github.com/fluxcd/flagger/pkg/apis/flagger/v1beta1"
	"github.com/fluxcd/flagger/pkg/client/clientset/versioned/fake"
	"github.com/fluxcd/flagger/pkg/router"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubefake "k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"
)

func main() {
	canaryFile := flag.String("canary", "", "the Canary (flagger.app/v1beta1) YAML file")
	var pw, cw int
	flag.Func("weights", "primary,canary weights to set after Reconcile", func(s string) error {
		_, err := fmt.Sscanf(s, "%d,%d", &pw, &cw)
		return err
	})
	flag.Parse()
	if err := run(*canaryFile, pw, cw); err != nil {
		fmt.Fprintln(os.Stderr, "flaggerref:", err)
		os.Exit(1)
	}
}

func run(file string, pw, cw int) error {
	raw, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var c flaggerv1.Canary
	if err := yaml.Unmarshal(raw, &c); err != nil {
		return err
	}
	ctx := context.Background()
	ns := c.Namespace
	apex, primary, canary := c.GetServiceNames()
	kube := kubefake.NewSimpleClientset()
	for name, app := range map[string]string{apex: c.Spec.TargetRef.Name + "-primary", primary: c.Spec.TargetRef.Name + "-primary", canary: c.Spec.TargetRef.Name} {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": app}}}
		if _, err := kube.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	mesh := fake.NewSimpleClientset()
	logger := zap.NewNop().Sugar()
	f := router.NewFactory(nil, kube, mesh, "nginx.ingress.kubernetes.io", "", logger, mesh, false)
	rt := f.MeshRouter(c.Spec.Provider, "app")
	if err := rt.Reconcile(&c); err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	if pw+cw > 0 {
		if err := rt.SetRoutes(&c, pw, cw, false); err != nil {
			return fmt.Errorf("set routes: %w", err)
		}
	}

	out := map[string]any{}
	add := func(kind string, list any, err error) error {
		if err != nil {
			return fmt.Errorf("list %s: %w", kind, err)
		}
		b, err := json.Marshal(list)
		if err != nil {
			return err
		}
		var l struct {
			Items []map[string]any `json:"items"`
		}
		if err := json.Unmarshal(b, &l); err != nil {
			return err
		}
		for _, it := range l.Items {
			md, _ := it["metadata"].(map[string]any)
			out[fmt.Sprintf("%s/%v", kind, md["name"])] = it
		}
		return nil
	}
	lo := metav1.ListOptions{}
	for _, step := range []func() error{
		func() error {
			l, err := mesh.SplitV1alpha1().TrafficSplits(ns).List(ctx, lo)
			return add("TrafficSplit.v1alpha1", l, err)
		},
		func() error {
			l, err := mesh.SplitV1alpha2().TrafficSplits(ns).List(ctx, lo)
			return add("TrafficSplit.v1alpha2", l, err)
		},
		func() error {
			l, err := mesh.SplitV1alpha3().TrafficSplits(ns).List(ctx, lo)
			return add("TrafficSplit.v1alpha3", l, err)
		},
		func() error {
			l, err := mesh.KumaV1alpha1().TrafficRoutes().List(ctx, lo)
			return add("TrafficRoute", l, err)
		},
		func() error { l, err := mesh.GlooV1().Upstreams(ns).List(ctx, lo); return add("Upstream", l, err) },
		func() error {
			l, err := mesh.GatewayV1().RouteTables(ns).List(ctx, lo)
			return add("RouteTable", l, err)
		},
		func() error {
			l, err := mesh.AppmeshV1beta2().VirtualNodes(ns).List(ctx, lo)
			return add("VirtualNode", l, err)
		},
		func() error {
			l, err := mesh.AppmeshV1beta2().VirtualRouters(ns).List(ctx, lo)
			return add("VirtualRouter", l, err)
		},
		func() error {
			l, err := mesh.AppmeshV1beta2().VirtualServices(ns).List(ctx, lo)
			return add("VirtualService", l, err)
		},
	} {
		if err := step(); err != nil {
			return err
		}
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
