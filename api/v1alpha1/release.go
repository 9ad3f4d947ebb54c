// Package v1alpha1 is canaryflow's own spec, beside Flagger's (package v1beta1): a Release rolls one Canary out
// across clusters in waves. It loads and validates a Release file and resolves it into a Plan, the input of the
// CanaryRelease workflow, with every cluster's Canary validated by v1beta1 before anything starts.
package v1alpha1

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/canaryflow/canaryflow/api/v1beta1"
)

// The kind this package defines.
const (
	Group       = "canaryflow.io"
	Version     = "v1alpha1"
	APIVersion  = Group + "/" + Version
	ReleaseKind = "Release"
)

// OnFailure is what a failed wave does to the clusters already promoted.
type OnFailure string

// The failure policies.
const (
	// OnFailureHalt stops the release and leaves promoted clusters on the new revision (the default).
	OnFailureHalt OnFailure = "halt"
	// OnFailureRollbackAll stops the release and puts every cluster it changed back on its previous images.
	OnFailureRollbackAll OnFailure = "rollback-all"
)

// GateMode says how a wave may start once the wave before it (and its bake time) is done.
type GateMode string

// The gates of a wave.
const (
	// GateAuto starts the wave at once (the default).
	GateAuto GateMode = "auto"
	// GateApproval waits for an approval naming the wave (`starter release approve`).
	GateApproval GateMode = "approval"
)

// Release is the document `starter release -f` reads.
type Release struct {
	APIVersion string      `json:"apiVersion"`
	Kind       string      `json:"kind"`
	Metadata   ReleaseMeta `json:"metadata"`
	Spec       ReleaseSpec `json:"spec"`
}

// ReleaseMeta names a release: its workflow is release/<name>.
type ReleaseMeta struct {
	Name string `json:"name"`
}

// ReleaseSpec is what to roll out, where, in which order.
type ReleaseSpec struct {
	// Canary is a Flagger Canary (apiVersion and kind may be left out), applied in every cluster.
	Canary json.RawMessage `json:"canary"`
	// Images is the revision released: container name → image, set on the Canary's target in each cluster
	// before its rollout starts.
	Images map[string]string `json:"images"`
	// OnFailure is halt (default) or rollback-all.
	OnFailure OnFailure `json:"onFailure,omitempty"`
	// Waves run in order; the clusters of a wave in parallel.
	Waves []Wave `json:"waves"`
}

// Wave is a set of clusters released together.
type Wave struct {
	// Name names the wave in status and approvals (default wave-<n>, counting from 1).
	Name string `json:"name,omitempty"`
	// Gate is auto (default) or approval: the wave starts only once approved.
	Gate GateMode `json:"gate,omitempty"`
	// BakeTime is how long the release waits after this wave succeeded before the next one starts (a Go
	// duration such as 30m).
	BakeTime string    `json:"bakeTime,omitempty"`
	Clusters []Cluster `json:"clusters"`
}

// Cluster is one cluster of a wave.
type Cluster struct {
	// Name is the cluster's name, unique in the release.
	Name string `json:"name"`
	// TaskQueue is the task queue the worker inside that cluster serves (default canaryflow-<name>).
	TaskQueue string `json:"taskQueue,omitempty"`
	// CanaryPatch is a JSON merge patch (RFC 7386) over spec.canary for this cluster only, e.g.
	// {spec: {analysis: {metrics: …}}}.
	CanaryPatch json.RawMessage `json:"canaryPatch,omitempty"`
}

// Plan is a validated Release resolved for each cluster: the input of the CanaryRelease workflow.
type Plan struct {
	Name      string            `json:"name"`
	Images    map[string]string `json:"images"`
	OnFailure OnFailure         `json:"onFailure"`
	Waves     []PlanWave        `json:"waves"`
	// Templates and AlertProviders are the MetricTemplates and AlertProviders of the file, for every cluster.
	Templates      []v1beta1.MetricTemplate `json:"templates,omitempty"`
	AlertProviders []v1beta1.AlertProvider  `json:"alertProviders,omitempty"`
}

// PlanWave is a wave with its bake time parsed and every cluster's Canary resolved.
type PlanWave struct {
	Name     string        `json:"name"`
	Gate     GateMode      `json:"gate"`
	BakeTime time.Duration `json:"bakeTime,omitempty"`
	Clusters []PlanCluster `json:"clusters"`
}

// PlanCluster is one cluster with the Canary it runs, defaulted and validated.
type PlanCluster struct {
	Name      string         `json:"name"`
	TaskQueue string         `json:"taskQueue"`
	Canary    v1beta1.Canary `json:"canary"`
}

// WorkflowID is the ID of the CanaryRelease workflow of a release.
func WorkflowID(name string) string { return "release/" + name }

// ClusterWorkflowID is the ID of the CanaryRollout a release runs in one cluster: the canary's own ID
// (v1beta1.WorkflowID) with "@<cluster>", so the rollouts of one canary in several clusters never collide, and
// every tool that lists by the prefix canary/<namespace>/ or by the Canary search attributes still finds them.
func ClusterWorkflowID(namespace, name, cluster string) string {
	return v1beta1.WorkflowID(namespace, name) + "@" + cluster
}

// DefaultTaskQueue is the task queue of a cluster that names none.
func DefaultTaskQueue(cluster string) string { return "canaryflow-" + cluster }

// clusterName is a DNS label: it ends up in workflow IDs and task queue names.
var clusterName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// validate checks the Release's own fields (not the Canary), returning every problem at once.
func (r *Release) validate(doc string) v1beta1.ErrorList {
	var l v1beta1.ErrorList
	add := func(path, format string, args ...any) {
		l = append(l, v1beta1.FieldError{Doc: doc, Path: path, Message: fmt.Sprintf(format, args...)})
	}
	if r.APIVersion != APIVersion {
		add("apiVersion", "%q is not supported: use %s", r.APIVersion, APIVersion)
	}
	if r.Metadata.Name == "" {
		add("metadata.name", "required: name the release (its workflow is release/<name>)")
	} else if !clusterName.MatchString(r.Metadata.Name) {
		add("metadata.name", "%q: use lowercase letters, digits and '-'", r.Metadata.Name)
	}
	if len(r.Spec.Canary) == 0 || string(r.Spec.Canary) == "null" {
		add("spec.canary", "required: the Canary (flagger.app/v1beta1) to roll out in every cluster")
	}
	if len(r.Spec.Images) == 0 {
		add("spec.images", "required: the images this release sets on the target, container: image")
	}
	for _, c := range sortedKeys(r.Spec.Images) {
		if r.Spec.Images[c] == "" {
			add("spec.images."+c, "empty image: write the image reference, e.g. ghcr.io/org/app:1.2.3")
		}
	}
	switch r.Spec.OnFailure {
	case "", OnFailureHalt, OnFailureRollbackAll:
	default:
		add("spec.onFailure", "%q: write halt (promoted clusters stay) or rollback-all (they go back to their previous images)", r.Spec.OnFailure)
	}
	if len(r.Spec.Waves) == 0 {
		add("spec.waves", "required: list at least one wave with its clusters")
	}
	seen := map[string]string{}
	queues := map[string]string{}
	waveNames := map[string]int{}
	for i, w := range r.Spec.Waves {
		p := fmt.Sprintf("spec.waves[%d]", i)
		name := w.Name
		if name == "" {
			name = fmt.Sprintf("wave-%d", i+1)
		} else if !clusterName.MatchString(name) {
			add(p+".name", "%q: use lowercase letters, digits and '-'", name)
		}
		if j, dup := waveNames[name]; dup {
			add(p+".name", "%q is the name of spec.waves[%d] too: name each wave once", name, j)
		}
		waveNames[name] = i
		switch w.Gate {
		case "", GateAuto, GateApproval:
		default:
			add(p+".gate", "%q: write auto (start at once) or approval (wait for starter release approve)", w.Gate)
		}
		if w.BakeTime != "" {
			d, err := time.ParseDuration(w.BakeTime)
			switch {
			case err != nil || d < 0:
				add(p+".bakeTime", "%q is not a duration: write e.g. 30m or 1h", w.BakeTime)
			case i == len(r.Spec.Waves)-1:
				add(p+".bakeTime", "the last wave has no wave after it to wait for: remove bakeTime")
			}
		}
		if len(w.Clusters) == 0 {
			add(p+".clusters", "empty wave: list at least one cluster, or remove the wave")
		}
		for j, c := range w.Clusters {
			cp := fmt.Sprintf("%s.clusters[%d]", p, j)
			switch {
			case c.Name == "":
				add(cp+".name", "required: name the cluster")
			case !clusterName.MatchString(c.Name):
				add(cp+".name", "%q: use lowercase letters, digits and '-' (it is part of workflow IDs and task queues)", c.Name)
			}
			if first, dup := seen[c.Name]; dup && c.Name != "" {
				add(cp+".name", "cluster %q is already in %s: a cluster is released once per release", c.Name, first)
			} else {
				seen[c.Name] = cp
			}
			tq := c.TaskQueue
			if tq == "" {
				tq = DefaultTaskQueue(c.Name)
			}
			if other, dup := queues[tq]; dup && c.Name != "" && other != c.Name {
				add(cp+".taskQueue", "task queue %q is cluster %s's too: each cluster's worker serves a queue of its own (default canaryflow-<cluster>)", tq, other)
			} else {
				queues[tq] = c.Name
			}
		}
	}
	return l
}

// resolve makes the plan: defaults applied, durations parsed, each cluster's Canary patched and loaded with the
// other documents of the file through v1beta1.Load (strict fields, Flagger's defaults, validation).
func (r *Release) resolve(doc string, others [][]byte, opts v1beta1.ValidateOptions) (*Plan, []string, v1beta1.ErrorList) {
	base, err := canaryDocument(r.Spec.Canary)
	if err != nil {
		return nil, nil, v1beta1.ErrorList{{Doc: doc, Path: "spec.canary", Message: err.Error()}}
	}
	plan := &Plan{Name: r.Metadata.Name, Images: r.Spec.Images, OnFailure: r.Spec.OnFailure}
	if plan.OnFailure == "" {
		plan.OnFailure = OnFailureHalt
	}
	var problems v1beta1.ErrorList
	var warnings []string
	loaded := map[string]bool{}
	for i, w := range r.Spec.Waves {
		pw := PlanWave{Name: w.Name, Gate: w.Gate}
		if pw.Name == "" {
			pw.Name = fmt.Sprintf("wave-%d", i+1)
		}
		if pw.Gate == "" {
			pw.Gate = GateAuto
		}
		if w.BakeTime != "" {
			pw.BakeTime, _ = time.ParseDuration(w.BakeTime) // validate checked it
		}
		for j, c := range w.Clusters {
			where := fmt.Sprintf("%s spec.waves[%d].clusters[%d] (%s)", doc, i, j, c.Name)
			canary := base
			if len(c.CanaryPatch) > 0 {
				if canary, err = mergePatch(base, c.CanaryPatch); err != nil {
					problems = append(problems, v1beta1.FieldError{Doc: doc,
						Path: fmt.Sprintf("spec.waves[%d].clusters[%d].canaryPatch", i, j), Message: err.Error()})
					continue
				}
			}
			var in []byte
			in = append(in, canary...)
			for _, o := range others {
				in = append(in, "\n---\n"...)
				in = append(in, o...)
			}
			set, err := v1beta1.Load(strings.NewReader(string(in)), where, opts)
			if err != nil {
				var el v1beta1.ErrorList
				if asList(err, &el) {
					problems = append(problems, el...)
				} else {
					problems = append(problems, v1beta1.FieldError{Doc: where, Message: err.Error()})
				}
				continue
			}
			cs := set.Canaries()
			if len(cs) != 1 {
				problems = append(problems, v1beta1.FieldError{Doc: where,
					Message: fmt.Sprintf("the file holds %d Canaries besides the Release: put the one Canary in spec.canary", len(cs)-1)})
				continue
			}
			for _, warn := range set.Warnings {
				if !loaded[warn] {
					loaded[warn] = true
					warnings = append(warnings, warn)
				}
			}
			if plan.Templates == nil && plan.AlertProviders == nil {
				plan.Templates, plan.AlertProviders = set.MetricTemplates(), set.AlertProviders()
			}
			tq := c.TaskQueue
			if tq == "" {
				tq = DefaultTaskQueue(c.Name)
			}
			pw.Clusters = append(pw.Clusters, PlanCluster{Name: c.Name, TaskQueue: tq, Canary: *cs[0]})
		}
		plan.Waves = append(plan.Waves, pw)
	}
	if len(problems) > 0 {
		return nil, nil, problems
	}
	return plan, warnings, nil
}

// canaryDocument returns spec.canary as a JSON Canary document, with apiVersion and kind filled in when left out.
func canaryDocument(raw json.RawMessage) (json.RawMessage, error) {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, fmt.Errorf("expected a Canary object (metadata, spec)")
	}
	if _, ok := m["apiVersion"]; !ok {
		m["apiVersion"] = v1beta1.APIVersion
	}
	if _, ok := m["kind"]; !ok {
		m["kind"] = v1beta1.CanaryKind
	}
	return json.Marshal(m)
}

// mergePatch applies an RFC 7386 JSON merge patch: objects merge key by key, null deletes, anything else
// replaces (lists too).
func mergePatch(doc, patch json.RawMessage) (json.RawMessage, error) {
	var d, p any
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(patch, &p); err != nil {
		return nil, fmt.Errorf("not valid JSON or YAML: %v", err)
	}
	if _, ok := p.(map[string]any); !ok {
		return nil, fmt.Errorf("expected an object of the Canary's fields to change, e.g. {spec: {analysis: {threshold: 2}}}")
	}
	return json.Marshal(merge(d, p))
}

func merge(d, p any) any {
	pm, ok := p.(map[string]any)
	if !ok {
		return p
	}
	dm, ok := d.(map[string]any)
	if !ok {
		dm = map[string]any{}
	}
	for k, v := range pm {
		if v == nil {
			delete(dm, k)
			continue
		}
		dm[k] = merge(dm[k], v)
	}
	return dm
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
