package activities

import "github.com/canaryflow/canaryflow/providers/router"

// KubeRouters is the RouterFactory of the worker: the routers of providers/router, which share the Router method
// set but, importing no Temporal package, cannot name this package's interface themselves.
type KubeRouters struct {
	Registry *router.Registry
}

// Router returns the router of provider (see RouterFactory).
func (k KubeRouters) Router(provider string) (Router, error) {
	rt, err := k.Registry.Get(provider)
	if err != nil {
		return nil, err
	}
	return rt, nil
}
