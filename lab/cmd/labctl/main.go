// Command labctl does the lab's set-up steps that are best done in Go:
//
//	labctl search-attributes [--address 127.0.0.1:7233] [--namespace default]
//
// registers canaryflow's search attributes (workflows/searchattr) on a Temporal
// server, idempotently: existing ones with the same type are left alone.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/canaryflow/canaryflow/workflows/searchattr"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: labctl search-attributes [--address host:port] [--namespace ns]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "search-attributes":
		fs := flag.NewFlagSet("search-attributes", flag.ExitOnError)
		addr := fs.String("address", "127.0.0.1:7233", "Temporal frontend address")
		ns := fs.String("namespace", "default", "Temporal namespace")
		_ = fs.Parse(os.Args[2:])
		if err := registerSearchAttributes(*addr, *ns); err != nil {
			fmt.Fprintln(os.Stderr, "labctl:", err)
			os.Exit(1)
		}
	default:
		fmt.Fprintln(os.Stderr, "labctl: unknown command", os.Args[1])
		os.Exit(2)
	}
}

func registerSearchAttributes(addr, ns string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.DialContext(ctx, client.Options{HostPort: addr, Namespace: ns})
	if err != nil {
		return fmt.Errorf("dial %s: %w", addr, err)
	}
	defer c.Close()
	op := c.OperatorService()
	have, err := op.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns})
	if err != nil {
		return fmt.Errorf("list search attributes: %w", err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for _, d := range searchattr.Definitions() {
		if t, ok := have.GetCustomAttributes()[d.Name]; ok {
			if t != d.Type {
				return fmt.Errorf("search attribute %s exists with type %v, want %v", d.Name, t, d.Type)
			}
			continue
		}
		missing[d.Name] = d.Type
	}
	if len(missing) > 0 {
		_, err = op.AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: ns, SearchAttributes: missing})
		if err != nil {
			return fmt.Errorf("add search attributes: %w", err)
		}
	}
	fmt.Printf("search attributes: %d defined, %d added\n", len(searchattr.Definitions()), len(missing))
	return nil
}
