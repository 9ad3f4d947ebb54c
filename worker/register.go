package main

import (
	"fmt"

	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.uber.org/zap"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/providers/catalog"
	"github.com/canaryflow/canaryflow/providers/router"
	"github.com/canaryflow/canaryflow/providers/workload"
	"github.com/canaryflow/canaryflow/workflows"
)

// dependencies are the real implementations behind the activities.
type dependencies struct {
	workloads *activities.Workloads
	routing   *activities.Routing
	analysis  *activities.Analysis
	status    *activities.CanaryStatus
	sets      *activities.StatefulSets
	targets   *activities.Targets
}

func newDependencies(cfg *config, kube *rest.Config, log *zap.Logger) (*dependencies, error) {
	// One clientset for every activity: workloads, routers and secrets share its connections.
	k, err := kubernetes.NewForConfig(kube)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(kube)
	if err != nil {
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	wl := workload.NewForClients(k, dyn)
	var ready activities.ReadyWaiter
	if cfg.watchReadiness {
		rw := workload.NewReadyWatcher(wl)
		rw.Denied = func(namespace string, err error) {
			log.Warn("readiness waits in this namespace poll the Deployments: the worker may not list and watch them"+
				" (grant list and watch on deployments.apps, as deploy/rbac does)", zap.String("namespace", namespace), zap.Error(err))
		}
		ready = rw
	}
	routers := router.NewRegistryForClients(router.Clients{Kube: k, Dynamic: dyn, Discovery: k.Discovery(),
		IngressAnnotationsPrefix: cfg.ingressAnnotationsPrefix})
	analysis := activities.NewAnalysis(activities.KubeSecrets{Client: k}, cfg.prometheus, cfg.cluster, log)
	analysis.Kube = dyn
	return &dependencies{
		workloads: &activities.Workloads{Kube: wl, Capabilities: catalog.Capabilities(), Namespaces: cfg.namespaces,
			AdmissionQueue: cfg.admissionQueue(), ReadinessQueue: cfg.readinessQueue(), Ready: ready},
		routing:  &activities.Routing{Routers: routers},
		analysis: analysis,
		status:   &activities.CanaryStatus{Client: dyn},
		sets:     &activities.StatefulSets{Kube: wl, Capabilities: catalog.Capabilities(), Namespaces: cfg.namespaces},
		targets:  &activities.Targets{Kube: wl},
	}, nil
}

// register puts the workflows (a rollout, the finalisation of a deleted Canary, and a release across clusters)
// and every activity on the worker.
func register(w worker.Registry, d *dependencies) {
	w.RegisterWorkflowWithOptions(workflows.CanaryRollout, workflow.RegisterOptions{Name: workflows.WorkflowName})
	w.RegisterWorkflowWithOptions(workflows.CanaryFinalize, workflow.RegisterOptions{Name: workflows.FinalizeWorkflowName})
	w.RegisterWorkflowWithOptions(workflows.CanaryRelease, workflow.RegisterOptions{Name: workflows.ReleaseWorkflowName})
	w.RegisterActivity(d.workloads)
	w.RegisterActivity(d.routing)
	w.RegisterActivity(d.analysis)
	w.RegisterActivity(d.status)
	w.RegisterActivity(d.sets)
	w.RegisterActivity(d.targets)
}
