package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/metrics"
)

// maxBacktestStarts bounds the starts of one backtest, so a typo in --step does not ask for a million replays.
const maxBacktestStarts = 10000

// backtestFlags are the flags of `starter backtest`.
type backtestFlags struct {
	file, from, to, prometheus, target string
	step                               time.Duration
}

func newBacktestCmd() *cobra.Command {
	var f backtestFlags
	cmd := &cobra.Command{
		Use:   "backtest -f FILE --from T [--to T] [--step 1m] [--prometheus URL] [--target canary|primary]",
		Short: "Replay a Canary's analysis over past Prometheus data: would a rollout started then have promoted?",
		Long: "Replays the analysis of the file's Canary (with its MetricTemplates) as if a rollout had started at every " +
			"--step from --from to --to, on past Prometheus data, and prints for each start every step (the weight or " +
			"iteration reached, the first failing check, promote or roll back) and a summary (how many starts roll " +
			"back, and which metric decided). Nothing in any cluster changes and no workflow starts.\n\n" +
			"It follows the workflow's schedule: a step every analysis interval, the first without metric checks; a " +
			"failed check halts the step and counts against the threshold (roll back when reached); onNoData and " +
			"thresholdRange judge as in a rollout; promotion after maxWeight (or stepWeights' last) or the last " +
			"iteration. Webhooks cannot be replayed and are treated as passed (a rollback webhook as not invoked); " +
			"the canary is taken as ready at every step.\n\n" +
			"Times are RFC3339 (2026-11-29T10:00:00Z) or durations before now (-24h, -90m, now); relative times are " +
			"rounded down to --step. Each metric is read with one Prometheus range query over the whole window. " +
			"Builtin metrics and {{ target }} select the canary's own series, which exist only where a canary ran: " +
			"the backtest is most useful with MetricTemplates that describe the service as a whole, or with " +
			"--target primary, which renders {{ target }} as <target>-primary. Only Prometheus metrics can be " +
			"replayed, and no Secret is read.\n\n" +
			"Exit codes: 0 every start would promote (or is still running now), 1 at least one start would roll back, " +
			"2 bad input or nothing could be judged (an unreadable file, a metric that is not a Prometheus one, " +
			"Prometheus unreachable or refusing a query).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return backtest(cmd.Context(), cmd.OutOrStdout(), f, time.Now())
		},
	}
	prom := os.Getenv("CANARYFLOW_PROMETHEUS")
	if prom == "" {
		prom = metrics.DefaultPrometheus
	}
	cmd.Flags().StringVarP(&f.file, "file", "f", "", "file with one Canary and the MetricTemplates it references")
	cmd.Flags().StringVar(&f.from, "from", "", "first start time: RFC3339 or a duration before now (-24h)")
	cmd.Flags().StringVar(&f.to, "to", "now", "last start time: RFC3339 or a duration before now")
	cmd.Flags().DurationVar(&f.step, "step", time.Minute, "time between two replayed starts (whole seconds)")
	cmd.Flags().StringVar(&f.prometheus, "prometheus", prom,
		"Prometheus of builtin metrics, inline queries and templates without provider.address when the Canary sets no metricsServer (as the worker's --prometheus; CANARYFLOW_PROMETHEUS)")
	cmd.Flags().StringVar(&f.target, "target", "canary",
		"whose series {{ target }} selects: canary (the target, as in a rollout) or primary (<target>-primary)")
	return cmd
}

func badInput(format string, args ...any) error {
	return &exitError{code: exitBadInput, err: fmt.Errorf("backtest: "+format, args...)}
}

// backtest replays the analysis for every start of the window and prints the verdicts; now is when "now" is.
func backtest(ctx context.Context, out io.Writer, f backtestFlags, now time.Time) error {
	if f.file == "" {
		return badInput("-f FILE is required")
	}
	if f.from == "" {
		return badInput("--from is required: RFC3339 or a duration before now (-24h)")
	}
	if f.step < time.Second || f.step%time.Second != 0 {
		return badInput("--step %s: use whole seconds, at least 1s", f.step)
	}
	from, err := parseWhen("--from", f.from, now, f.step)
	if err != nil {
		return err
	}
	to, err := parseWhen("--to", f.to, now, f.step)
	if err != nil {
		return err
	}
	if to.Before(from) {
		return badInput("--to %s is before --from %s", to.Format(time.RFC3339), from.Format(time.RFC3339))
	}
	if n := to.Sub(from)/f.step + 1; n > maxBacktestStarts {
		return badInput("%d starts from --from to --to every --step %s: at most %d; take a longer --step", n, f.step, maxBacktestStarts)
	}
	c, set, err := loadOneCanary(f.file)
	if err != nil {
		return err
	}
	checks, notes, err := newPromChecks(ctx, c, set.MetricTemplates(), f, from, to, now)
	if err != nil {
		return err
	}

	a := c.Spec.Analysis
	fmt.Fprintf(out, "Backtest of Canary %s/%s (strategy %s, schedule %s", c.Namespace, c.Name, c.Strategy(), c.Schedule())
	if a != nil {
		fmt.Fprintf(out, ", interval %s, threshold %d", a.IntervalDuration(), a.Threshold)
	}
	fmt.Fprintf(out, "): a rollout started every %s from %s to %s\n", f.step, from.Format(time.RFC3339), to.Format(time.RFC3339))
	for _, n := range notes {
		fmt.Fprintln(out, "note:", n)
	}

	var results []replayResult
	for start := from; !start.After(to); start = start.Add(f.step) {
		r, err := replay(c, start, now, checks.at)
		if err != nil {
			return &exitError{code: exitBadInput, err: fmt.Errorf("backtest: %w", err)}
		}
		results = append(results, r)
		printReplay(out, c, r, now)
	}
	fmt.Fprintf(out, "(%d Prometheus range queries)\n", checks.queries)
	if printBacktestSummary(out, results) {
		return &exitError{code: exitFailed}
	}
	return nil
}

// parseWhen reads a --from/--to value: RFC3339 (to the second), "now", or a duration before now rounded down to
// step (so the starts of "-24h" fall on whole minutes with --step 1m).
func parseWhen(flag, s string, now time.Time, step time.Duration) (time.Time, error) {
	if s == "now" {
		return now.Truncate(step).UTC(), nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d > 0 {
			return time.Time{}, badInput("%s %s: a relative time lies before now: -%s", flag, s, s)
		}
		return now.Add(d).Truncate(step).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, badInput("%s %q: use RFC3339 (2026-11-29T10:00:00Z), a duration before now (-24h) or now", flag, s)
	}
	return t.Truncate(time.Second).UTC(), nil
}

// metricSeries is one metric of the analysis with the values its range queries returned.
type metricSeries struct {
	metric v1beta1.CanaryMetric
	query  string
	prom   *metrics.Prometheus
	// values maps an evaluation time (Unix milliseconds) to the metric's value; a time asked without a value had
	// no data.
	values map[int64]float64
	// fetched is the last evaluation time asked (zero before the first query).
	fetched time.Time
}

// promChecks judges the metrics of the analysis at given times from range queries. Every time a check can run
// is from + i·step + k·interval (k ≥ 1), so one range query per metric, stepping by the greatest common divisor of
// step and interval from the first of those times, holds the value of every check of every start: far fewer
// queries than an instant query per check (starts × steps × metrics), and the same values, since Prometheus
// evaluates a range query as an instant query at each of its times.
type promChecks struct {
	ctx     context.Context
	series  []*metricSeries
	origin  time.Time
	grid    time.Duration
	span    time.Duration
	now     time.Time
	queries int
}

// newPromChecks resolves every metric of the Canary as a rollout would (activities.ResolveMetric) and refuses
// what cannot be replayed; it returns notes for the reader about what the replay assumes.
func newPromChecks(ctx context.Context, c *v1beta1.Canary, templates []v1beta1.MetricTemplate, f backtestFlags,
	from, to, now time.Time) (*promChecks, []string, error) {
	ref := activities.RefOf(c)
	switch f.target {
	case "canary":
	case "primary":
		ref.Target = c.Spec.TargetRef.Name + "-primary"
	default:
		return nil, nil, badInput("--target %q: use canary or primary", f.target)
	}
	a := c.Spec.Analysis
	interval := a.IntervalDuration()
	p := &promChecks{ctx: ctx, origin: from.Add(interval), grid: gcd(f.step, interval), now: now}
	var notes []string
	var hooks []string
	if a != nil {
		for _, h := range a.Webhooks {
			hooks = append(hooks, fmt.Sprintf("%s (%s)", h.Name, h.Type))
		}
		// The window and one analysis after its last start, so one query per metric holds every check unless
		// failed checks and holds stretch an analysis (then the next query reads on from there).
		steps := len(a.Weights()) + a.Iterations + 1
		p.span = to.Sub(from) + time.Duration(steps+a.Threshold)*interval
	}
	if len(hooks) > 0 {
		notes = append(notes, "webhooks cannot be replayed: "+strings.Join(hooks, ", ")+
			" are treated as passed (a rollback webhook as not invoked)")
	}
	for _, m := range analysisMetrics(a) {
		q, err := activities.ResolveMetric(ref, m, templates, f.prometheus)
		if err != nil {
			return nil, nil, badInput("%v", err)
		}
		if t := q.Config.Type; t != "" && t != "prometheus" {
			return nil, nil, badInput("metric %s: MetricTemplate %s/%s queries %s: the backtest replays Prometheus metrics only",
				m.Name, q.Template.Namespace, q.Template.Name, t)
		}
		if q.Template != nil && q.Template.Spec.Provider.SecretRef != nil && q.Template.Spec.Provider.SecretRef.Name != "" {
			return nil, nil, badInput("metric %s: MetricTemplate %s/%s reads credentials from Secret %s, which the backtest does not read: "+
				"point --prometheus at a Prometheus that needs none and drop provider.address and secretRef from a copy of the template",
				m.Name, q.Template.Namespace, q.Template.Name, q.Template.Spec.Provider.SecretRef.Name)
		}
		builtin := m.TemplateRef == nil && m.Query == ""
		if builtin && f.target == "primary" {
			return nil, nil, badInput("metric %s: a builtin query selects the canary by the names its router gives it and has no "+
				"primary form: use --target canary, or a MetricTemplate whose query selects {{ target }}", m.Name)
		}
		if builtin {
			notes = append(notes, fmt.Sprintf("metric %s is builtin: it reads the canary's own series, which exist only where a "+
				"canary ran; elsewhere onNoData (%s) decides", m.Name, m.OnNoData))
		}
		prom, err := metrics.NewPrometheus(q.Config)
		if err != nil {
			return nil, nil, badInput("metric %s: %v", m.Name, err)
		}
		notes = append(notes, fmt.Sprintf("metric %s on %s: %s", m.Name, metrics.RedactURL(q.Config.Address), strings.Join(strings.Fields(q.Query), " ")))
		p.series = append(p.series, &metricSeries{metric: m, query: q.Query, prom: prom, values: map[int64]float64{}})
	}
	notes = append(notes, "the canary is taken as ready at every step: readiness and the progress deadline are not replayed")
	return p, notes, nil
}

func analysisMetrics(a *v1beta1.CanaryAnalysis) []v1beta1.CanaryMetric {
	if a == nil {
		return nil
	}
	return a.Metrics
}

// at judges every metric at time t, reading Prometheus only for times past what it already asked.
func (p *promChecks) at(t time.Time) ([]activities.CheckResult, error) {
	out := make([]activities.CheckResult, 0, len(p.series))
	for _, s := range p.series {
		if s.fetched.IsZero() || t.After(s.fetched) {
			if err := p.fetch(s, t); err != nil {
				return nil, err
			}
		}
		res := activities.CheckResult{Metric: s.metric.Name, Query: s.query}
		if r := s.metric.ThresholdRange; r != nil {
			res.Min, res.Max = r.Min, r.Max
		}
		if v, ok := s.values[t.UnixMilli()]; ok {
			res.Value = &v
			res.Verdict, res.Message = activities.Judge(s.metric.Name, v, res.Min, res.Max)
		} else {
			res.Verdict, res.Message = activities.NoData(s.metric.Name, s.metric.OnNoData)
		}
		out = append(out, res)
	}
	return out, nil
}

// fetch asks Prometheus for the metric's values from the first time not yet asked through span further (at
// least to t), never past now.
func (p *promChecks) fetch(s *metricSeries, t time.Time) error {
	from := p.origin
	if !s.fetched.IsZero() {
		from = s.fetched.Add(p.grid)
	}
	to := from.Add(p.span)
	if to.Before(t) {
		to = t
	}
	if to.After(p.now) {
		to = from.Add(p.now.Sub(from) / p.grid * p.grid)
	}
	p.queries++
	samples, err := s.prom.RunRangeQuery(p.ctx, s.query, from, to, p.grid)
	if err != nil {
		if errors.Is(err, metrics.ErrQueryRejected) {
			return fmt.Errorf("metric %s: Prometheus refused the query (a rollout would fail this check at every step): %w", s.metric.Name, err)
		}
		return fmt.Errorf("metric %s: %w (check the address: the template's provider.address, the Canary's metricsServer or --prometheus)", s.metric.Name, err)
	}
	for _, smp := range samples {
		s.values[smp.At.UnixMilli()] = smp.Value
	}
	s.fetched = to
	return nil
}

func gcd(a, b time.Duration) time.Duration {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// printReplay writes one start: its end, then each step.
func printReplay(w io.Writer, c *v1beta1.Canary, r replayResult, now time.Time) {
	switch r.End {
	case endRollback:
		fmt.Fprintf(w, "start %s: roll back at %s: %s\n", r.Start.Format(time.RFC3339), clock(r.At), r.Reason)
	case endRunning:
		fmt.Fprintf(w, "start %s: still running at %s (no data after now)\n", r.Start.Format(time.RFC3339), clock(now))
	default:
		fmt.Fprintf(w, "start %s: promote at %s\n", r.Start.Format(time.RFC3339), clock(r.At))
	}
	a := c.Spec.Analysis
	for _, st := range r.Steps {
		var where string
		switch c.Strategy() {
		case v1beta1.StrategyABTesting, v1beta1.StrategyBlueGreen, v1beta1.StrategyBlueGreenMirroring:
			where = fmt.Sprintf("iteration %d/%d", st.Iteration, a.Iterations)
		default:
			where = fmt.Sprintf("weight %d", st.Weight)
			if st.Mirrored {
				where += " mirrored"
			}
		}
		var what string
		switch {
		case st.First:
			what = "first step: pre-rollout webhooks, no metric checks"
		case st.Decisive >= 0 && st.Checks[st.Decisive].Verdict == activities.VerdictFail:
			what = fmt.Sprintf("%s (failed checks %d/%d)", st.Checks[st.Decisive].Message, st.FailedChecks, a.Threshold)
		case st.Decisive >= 0:
			what = st.Checks[st.Decisive].Message
		case len(st.Checks) == 0:
			what = "no metric checks"
		default:
			msgs := make([]string, len(st.Checks))
			for i, ch := range st.Checks {
				msgs[i] = ch.Message
			}
			what = strings.Join(msgs, "; ")
		}
		fmt.Fprintf(w, "  %s  %-18s %s → %s\n", clock(st.At), where, what, st.Then)
	}
}

func clock(t time.Time) string { return t.UTC().Format("15:04:05Z") }

// printBacktestSummary writes how many starts end how, and which metric rolled them back; it reports whether any
// start would roll back.
func printBacktestSummary(w io.Writer, results []replayResult) bool {
	count := map[string]int{}
	type decided struct {
		n           int
		first, last time.Time
	}
	by := map[string]*decided{}
	var order []string
	for _, r := range results {
		count[r.End]++
		if r.End != endRollback {
			continue
		}
		d := by[r.Decider]
		if d == nil {
			d = &decided{first: r.Start}
			by[r.Decider] = d
			order = append(order, r.Decider)
		}
		d.n++
		d.last = r.Start
	}
	fmt.Fprintf(w, "Summary: %d of %d starts would roll back, %d would promote, %d still running\n",
		count[endRollback], len(results), count[endPromote], count[endRunning])
	for _, m := range order {
		d := by[m]
		if m == "" {
			m = "(threshold 0)"
		}
		fmt.Fprintf(w, "  rolled back by %s: %d starts, first %s, last %s\n", m, d.n, d.first.Format(time.RFC3339), d.last.Format(time.RFC3339))
	}
	return count[endRollback] > 0
}
