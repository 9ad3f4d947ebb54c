package activities

import (
	"github.com/canaryflow/canaryflow/providers/router"
	"github.com/canaryflow/canaryflow/providers/workload"
)

// The worker's implementations satisfy the activities' contracts.
var (
	_ WorkloadClient = (*workload.Client)(nil)
	_ Routers        = (*router.Registry)(nil)
)
