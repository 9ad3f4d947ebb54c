package activities

import (
	"github.com/canaryflow/canaryflow/providers/router"
	"github.com/canaryflow/canaryflow/providers/workload"
)

// The Kubernetes implementations satisfy the activities' contracts.
var (
	_ WorkloadClient = (*workload.Client)(nil)
	_ RouterFactory  = KubeRouters{}
	_ Router         = (*router.Traefik)(nil)
	_ Router         = (*router.GatewayAPI)(nil)
	_ Router         = (*router.Kubernetes)(nil)
)
