// Command prebuild builds the router translators the lab tier's tests run (labtest.BuildTranslators), ahead of
// those tests. `make test` starts it in the background at the lowest CPU priority while lint and the unit tier
// run, so that a cold run compiles the translators in the CPU those leave idle instead of beside the lab tests.
//
//	go run ./lab/cmd/prebuild
package main

import (
	"fmt"
	"os"

	"github.com/canaryflow/canaryflow/lab/labtest"
)

func main() {
	if err := labtest.BuildTranslators(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "prebuild:", err)
		os.Exit(1)
	}
}
