package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/canaryflow/canaryflow/lab/labbin"
	"github.com/canaryflow/canaryflow/workflows"
)

// docCommands returns every command of a ```sh block of the file that starts with "temporal ".
func docCommands(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var cmds []string
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(string(b), -1) {
		block := strings.ReplaceAll(m[1], "\\\n", " ")
		for _, line := range strings.Split(block, "\n") {
			if line = strings.TrimSpace(line); strings.HasPrefix(line, "temporal ") {
				cmds = append(cmds, line)
			}
		}
	}
	return cmds
}

// TestOperatingDocTemporalCommandsRunAsWritten runs every `temporal` command of docs/operating.md against a real
// dev server, each on a rollout of its own (so promote, abort, cancel and terminate do not close the rollout the
// next command needs), with the test's workflow ID and task queue substituted for the documented ones.
func TestOperatingDocTemporalCommandsRunAsWritten(t *testing.T) {
	t.Parallel()
	e := startTemporal(t)
	cmds := docCommands(t, "../docs/operating.md")
	all := strings.Join(cmds, "\n")
	for _, want := range []string{
		"temporal workflow start --task-queue canaryflow --type CanaryRollout --workflow-id canary/test/podinfo",
		"--input-file rollout-input.json",
		"--name approve --input '{\"gate\":\"confirm-promotion\"",
		"--name abort --input", "--name pause --input", "--name resume --input", "--name promote --input",
		"temporal workflow query --workflow-id canary/test/podinfo --name status",
		`temporal workflow list --query "CanaryNamespace='test' AND CanaryPhase='Progressing' AND ExecutionStatus='Running'"`,
		"temporal workflow show --workflow-id canary/test/podinfo",
		"temporal workflow update execute --workflow-id canary/test/podinfo --name approve",
	} {
		require.Contains(t, all, want, "docs/operating.md lost a command")
	}

	for i, cmd := range cmds {
		name := fmt.Sprintf("podinfo-%d", i)
		id := "canary/docs/" + name
		dir := t.TempDir()
		// The documented way to write the input file, for a canary of this command's own.
		// A confirm-promotion webhook (passing) makes that gate one an approve update may name.
		f := canaryFile(t, "docs", name, "stepWeight: 10\n    maxWeight: 50",
			"    webhooks:\n    - name: ask-a-human\n      type: confirm-promotion\n      url: http://gate.test/approve\n")
		code, input, errOut := e.starter("rollout", "-f", f, "--print-input")
		require.Equal(t, 0, code, errOut)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "rollout-input.json"), []byte(input), 0o600))
		starts := strings.HasPrefix(cmd, "temporal workflow start ") || strings.HasPrefix(cmd, "temporal workflow signal-with-start ")
		if !starts {
			code, out, errOut := e.starter("rollout", "-f", f)
			require.Equal(t, 0, code, out+errOut)
			e.eventuallyStatus(t, "docs", name, func(s workflows.Status) bool { return s.Phase == workflows.PhaseProgressing }, "Progressing")
		}

		run := strings.ReplaceAll(cmd, "canary/test/podinfo", id)
		run = strings.ReplaceAll(run, "--task-queue canaryflow ", "--task-queue "+testTaskQueue+" ")
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		c := exec.CommandContext(ctx, "bash", "-c", run)
		c.Dir = dir
		c.Env = append(os.Environ(), "TEMPORAL_ADDRESS="+e.addr, "TEMPORAL_NAMESPACE=default",
			"PATH="+filepath.Dir(labbin.Temporal())+":"+os.Getenv("PATH"))
		out, err := c.CombinedOutput()
		cancel()
		require.NoError(t, err, "%s\n%s", run, out)

		switch {
		case starts:
			d, err := e.client.DescribeWorkflowExecution(t.Context(), id, "")
			require.NoError(t, err, run)
			assert.Equal(t, testTaskQueue, d.GetExecutionConfig().GetTaskQueue().GetName(), run)
		case strings.HasPrefix(cmd, "temporal workflow update execute "):
			code, hist, errOut := e.starter("history", name, "-n", "docs")
			require.Equal(t, 0, code, errOut)
			assert.Regexp(t, `(?m) (approve|pause) by alice .*\(update\)$`, hist, "history shows who sent the update")
		case strings.HasPrefix(cmd, "temporal workflow query "):
			var res struct {
				QueryResult []struct {
					Phase string `json:"phase"`
				} `json:"queryResult"`
			}
			require.NoError(t, json.Unmarshal(out, &res), "%s\n%s", run, out)
			require.Len(t, res.QueryResult, 1, string(out))
			assert.NotEmpty(t, res.QueryResult[0].Phase, string(out))
		}
	}
}
