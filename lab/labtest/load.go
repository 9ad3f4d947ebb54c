package labtest

import (
	"fmt"
	"path/filepath"
)

// Load returns the running lab for programs that are not tests (the demo): it never starts one, since a person
// starts the lab with make lab-up and stops it with make lab-down.
func Load() (*Env, error) {
	env, err := readEnv(filepath.Join(runDir(), "lab.env"))
	if err != nil {
		return nil, fmt.Errorf("no running lab (make lab-up starts it): %w", err)
	}
	if err := healthy(env); err != nil {
		return nil, fmt.Errorf("the lab is not healthy (make lab-down; make lab-up): %w", err)
	}
	return env, nil
}
