// Command prebuild builds the router translators the lab tier's tests run (labtest.BuildTranslators), ahead of
// those tests. `make test` (lab/test-all.sh) starts it in the background at the lowest CPU priority once the lab is
// built, so that a cold run compiles the translators in the CPU the unit tier and the lab tier leave idle; a test
// that needs one finds it built or waits under its lock.
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
