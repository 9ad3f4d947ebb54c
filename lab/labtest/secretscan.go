package labtest

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/reflect/protoreflect"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/canaryflow/canaryflow/lab/labbin"
	"github.com/canaryflow/canaryflow/workflows/searchattr"
)

// A Secret's value must never reach a workflow history: histories are kept, shown in the Web UI and exported.
// Every lab namespace is scanned when its test ends (Namespace's cleanup), before the namespace is deleted: the
// data of each of its Secrets against every event of every workflow of the lab's Temporal tied to it.

// secretValue is one value to look for and where it comes from (never the value itself, in reports).
type secretValue struct {
	value []byte
	where string // "Secret <name> key <key>"
}

// scannable reports whether a Secret value is worth looking for: 8 bytes or more, not the namespace's name, not
// a certificate (public), and not a plain lowercase word, which could be in a history for other reasons ("password",
// "prometheus-token"). Test secrets and real ones have digits, capitals or symbols.
func scannable(v []byte, ns string) bool {
	s := string(v)
	if len(v) < 8 || s == ns || strings.Contains(s, "-----BEGIN CERTIFICATE-----") {
		return false
	}
	for _, r := range s {
		if unicode.IsDigit(r) || unicode.IsUpper(r) || (r != '-' && r != '_' && !unicode.IsLetter(r)) {
			return true
		}
	}
	return false
}

// secretValues reads the values of ns's Secrets worth scanning for.
func secretValues(ctx context.Context, cs kubernetes.Interface, ns string) ([]secretValue, error) {
	list, err := cs.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list Secrets of %s: %w", ns, err)
	}
	var out []secretValue
	for _, s := range list.Items {
		for k, v := range s.Data {
			if s.Type == corev1.SecretTypeServiceAccountToken && (k == "namespace" || k == "ca.crt") {
				continue // the namespace's name and the cluster's CA: public
			}
			if scannable(v, ns) {
				out = append(out, secretValue{value: v, where: fmt.Sprintf("Secret %s key %s", s.Name, k)})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].where < out[j].where })
	return out, nil
}

// ScanHistoriesForSecrets looks for the values of namespace ns's Secrets in the history of every workflow of tc
// tied to ns (search attribute CanaryNamespace, or a workflow ID canary/<ns>/…), in each event as JSON and in its
// decoded payloads, as written and base64-encoded. It returns one finding per value and event, naming the Secret
// and key, never the value. With no Secret value worth scanning it makes no Temporal request.
func ScanHistoriesForSecrets(ctx context.Context, cs kubernetes.Interface, tc client.Client, temporalNS, ns string) ([]string, error) {
	values, err := secretValues(ctx, cs, ns)
	if err != nil || len(values) == 0 {
		return nil, err
	}
	var forms []form // four forms per value, in this order
	for _, v := range values {
		forms = append(forms,
			form{string(v.value), v.where},
			form{base64.StdEncoding.EncodeToString(v.value), v.where + " (base64)"},
			form{base64.RawStdEncoding.EncodeToString(v.value), v.where + " (base64)"},
			form{base64.URLEncoding.EncodeToString(v.value), v.where + " (base64url)"})
	}
	query := fmt.Sprintf("%s = %q OR WorkflowId STARTS_WITH %q", searchattr.CanaryNamespace.GetName(), ns, "canary/"+ns+"/")
	var findings []string
	var token []byte
	for {
		resp, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: temporalNS, Query: query, NextPageToken: token})
		if err != nil {
			return findings, fmt.Errorf("list workflows of namespace %s (%s): %w", ns, query, err)
		}
		// Four histories at a time: reading one waits mostly on the server.
		execs := resp.GetExecutions()
		found := make([][]string, len(execs))
		errs := make([]error, len(execs))
		sem := make(chan struct{}, 4)
		var wg sync.WaitGroup
		for i, e := range execs {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				found[i], errs[i] = scanHistory(ctx, tc, e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId(), forms)
			}()
		}
		wg.Wait()
		for i := range execs {
			findings = append(findings, found[i]...)
			if errs[i] != nil {
				return findings, errs[i]
			}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return findings, nil
		}
	}
}

// form is a Secret's value in one of its four forms (as written, base64 with and without padding, base64url).
type form struct {
	text  string
	where string
}

// scanHistory returns one finding per value (forms, four per value) and event of one run's history.
func scanHistory(ctx context.Context, tc client.Client, id, run string, forms []form) ([]string, error) {
	var findings []string
	it := tc.GetWorkflowHistory(ctx, id, run, false, 0)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return findings, fmt.Errorf("history of %s run %s: %w", id, run, err)
		}
		text := eventText(ev)
		found := map[int]bool{} // one finding per value and event, in its first form found
		for i, f := range forms {
			if !found[i/4] && strings.Contains(text, f.text) {
				found[i/4] = true
				findings = append(findings, fmt.Sprintf("%s is in workflow %s run %s event %d (%s)",
					f.where, id, run, ev.GetEventId(), ev.GetEventType()))
			}
		}
	}
	return findings, nil
}

// eventText is every string and every bytes field of an event, map keys included, each bytes field also as
// standard base64 (how the event's JSON shows it), one per line. Read by reflection, not through its JSON: after
// a 1,000-canary benchmark the scan reads 2,000 histories, and marshalling each event to JSON and walking it back
// kept a core busy for minutes.
func eventText(ev *historypb.HistoryEvent) string {
	var out strings.Builder
	var message func(m protoreflect.Message)
	value := func(fd protoreflect.FieldDescriptor, v protoreflect.Value) {
		switch fd.Kind() {
		case protoreflect.MessageKind, protoreflect.GroupKind:
			message(v.Message())
		case protoreflect.StringKind:
			out.WriteString(v.String())
			out.WriteByte('\n')
		case protoreflect.BytesKind:
			out.Write(v.Bytes())
			out.WriteByte('\n')
			out.WriteString(base64.StdEncoding.EncodeToString(v.Bytes()))
			out.WriteByte('\n')
		}
	}
	message = func(m protoreflect.Message) {
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch {
			case fd.IsList():
				for l, i := v.List(), 0; i < l.Len(); i++ {
					value(fd, l.Get(i))
				}
			case fd.IsMap():
				v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
					out.WriteString(k.String())
					out.WriteByte('\n')
					value(fd.MapValue(), mv)
					return true
				})
			default:
				value(fd, v)
			}
			return true
		})
	}
	message(ev.ProtoReflect())
	return out.String()
}

// scanAtCleanup runs ScanHistoriesForSecrets for ns against the lab's Temporal and every private dev server this
// process started (labbin.DevServer), and fails t with the findings. A private server that has stopped is
// skipped: its histories were in memory and went with it.
func scanAtCleanup(t interface {
	Errorf(string, ...any)
	Logf(string, ...any)
}, env *Env, cs kubernetes.Interface, ns string) {
	// Every history of the namespace is read: after make bench-scale's 1,000 canaries (2,000 runs) on a loaded
	// server, that took longer than a minute.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	values, err := secretValues(ctx, cs, ns)
	if err != nil {
		t.Errorf("labtest: secret scan of %s: %v", ns, err)
		return
	}
	if len(values) == 0 {
		return
	}
	scan := func(addr, temporalNS string, private bool) {
		if private {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return // stopped
			}
			c.Close()
		}
		dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
		defer dcancel()
		tc, err := client.DialContext(dctx, client.Options{HostPort: addr, Namespace: temporalNS, Logger: quiet{}})
		if err != nil {
			if !private {
				t.Errorf("labtest: secret scan of %s: temporal client for %s: %v", ns, addr, err)
			}
			return
		}
		defer tc.Close()
		findings, err := ScanHistoriesForSecrets(ctx, cs, tc, temporalNS, ns)
		if err != nil && !private {
			t.Errorf("labtest: secret scan of %s on %s: %v", ns, addr, err)
		}
		for _, f := range findings {
			t.Errorf("labtest: a Secret's value reached a workflow history on %s: %s", addr, f)
		}
	}
	scan(env.TemporalAddress, env.TemporalNamespace, false)
	for _, addr := range labbin.DevServers() {
		scan(addr, "default", true)
	}
}

// quiet drops the SDK client's log lines (a stopped private server would log its refusals).
type quiet struct{}

func (quiet) Debug(string, ...any) {}
func (quiet) Info(string, ...any)  {}
func (quiet) Warn(string, ...any)  {}
func (quiet) Error(string, ...any) {}
