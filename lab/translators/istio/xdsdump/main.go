// Command xdsdump asks istiod, as a sidecar would, for the route configurations of some routes (RDS over ADS)
// and prints the first answer as JSON (protojson, proto field names), so tests can read what istiod derives from
// VirtualServices and DestinationRules without an Envoy.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	// Registers every Envoy extension type istiod may put in a typed config, so protojson can print them.
	_ "istio.io/istio/pkg/config/xds"
)

const routeType = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"

func main() {
	addr := flag.String("istiod", "127.0.0.1:15010", "istiod's plain-text gRPC address")
	node := flag.String("node", "sidecar~10.244.0.9~client.test~test.svc.cluster.local", "the proxy's node id")
	namespace := flag.String("namespace", "test", "the proxy's namespace (node metadata)")
	timeout := flag.Duration("timeout", 10*time.Second, "how long to wait for the answer")
	flag.Parse()
	if err := run(*addr, *node, *namespace, flag.Args(), *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "xdsdump:", err)
		os.Exit(1)
	}
}

func run(addr, node, namespace string, routes []string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	meta, err := structpb.NewStruct(map[string]any{
		"NAMESPACE": namespace, "ISTIO_VERSION": "1.29.0", "CLUSTER_ID": "Kubernetes", "INTERCEPTION_MODE": "REDIRECT",
		"GENERATOR": "",
	})
	if err != nil {
		return err
	}
	req := &discovery.DiscoveryRequest{TypeUrl: routeType, ResourceNames: routes, Node: &core.Node{Id: node, Metadata: meta}}
	if err := stream.Send(req); err != nil {
		return err
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		if resp.TypeUrl != routeType {
			continue
		}
		out := []byte("[")
		for i, any := range resp.Resources {
			var rc route.RouteConfiguration
			if err := any.UnmarshalTo(&rc); err != nil {
				return err
			}
			b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(&rc)
			if err != nil {
				return err
			}
			if i > 0 {
				out = append(out, ',')
			}
			out = append(out, b...)
		}
		out = append(out, "]\n"...)
		_, err = os.Stdout.Write(out)
		return err
	}
}
