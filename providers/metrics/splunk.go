package metrics

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// Splunk Observability Cloud (SignalFx): a SignalFlow program run through the SignalFlow API, with the access
// token under the Secret key Flagger reads.
const (
	SplunkTokenKey = "sf_token_key"
	// splunkWindowFactor: the computation covers ten metric intervals, as in Flagger.
	splunkWindowFactor = 10
)

// Splunk runs SignalFlow programs. Flagger's client speaks SignalFlow's WebSocket transport; canaryflow uses the
// REST + Server-Sent Events transport of the same API (POST /v2/signalflow/execute), which answers one
// computation per request with the same messages, so one HTTP client serves it.
type Splunk struct {
	cfg    Config
	stream string
	token  string
}

// NewSplunk builds a Splunk provider for cfg.Address; like Flagger it accepts the realm's API URL
// (https://api.<realm>.signalfx.com) or its stream URL (https:// or wss://stream.<realm>.signalfx.com) and sends
// the computation to the stream host. The Secret must hold sf_token_key.
func NewSplunk(cfg Config) (*Splunk, error) {
	if cfg.Address == "" {
		return nil, fmt.Errorf("%w: splunk needs provider.address (the realm's API URL, e.g. https://api.us1.signalfx.com)", ErrInvalidConfig)
	}
	addr := strings.TrimSuffix(cfg.Address, "/")
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("%w: splunk address %s is not a URL", ErrInvalidConfig, RedactURL(addr))
	}
	switch u.Scheme {
	case "wss":
		u.Scheme = "https"
	case "ws":
		u.Scheme = "http"
	case "http", "https":
	default:
		return nil, fmt.Errorf("%w: splunk address %s is not an http(s) or ws(s) URL", ErrInvalidConfig, RedactURL(addr))
	}
	if rest, ok := strings.CutPrefix(u.Host, "api."); ok {
		u.Host = "stream." + rest
	}
	token, err := requireKey(cfg, "splunk", SplunkTokenKey)
	if err != nil {
		return nil, err
	}
	return &Splunk{cfg: cfg, stream: u.Scheme + "://" + u.Host + u.Path, token: token}, nil
}

// RunQuery executes the program over [now-10×interval, now] with immediate=true (the computation ends at stop
// instead of waiting for late data) and returns the newest non-null value. Like Flagger it refuses a program
// that publishes more than one time series: a check needs one number.
func (s *Splunk) RunQuery(ctx context.Context, query string) (float64, error) {
	now := s.cfg.now().UnixMilli()
	q := url.Values{}
	q.Set("start", strconv.FormatInt(now-splunkWindowFactor*s.cfg.interval().Milliseconds(), 10))
	q.Set("stop", strconv.FormatInt(now, 10))
	q.Set("immediate", "true")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.stream+"/v2/signalflow/execute?"+q.Encode(),
		strings.NewReader(strings.TrimSpace(query)))
	if err != nil {
		return 0, fmt.Errorf("splunk request: %w", err)
	}
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("X-SF-Token", s.token)
	resp, err := s.cfg.client().Do(req)
	if err != nil {
		return 0, fmt.Errorf("splunk %s: %w", RedactURL(s.stream), redactErr(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return 0, statusError("splunk "+RedactURL(s.stream), resp.StatusCode, body)
	}
	v, err := readSignalFlow(io.LimitReader(resp.Body, 16<<20))
	if err != nil && !errors.Is(err, ErrNoValues) && !errors.Is(err, ErrQueryRejected) {
		return 0, fmt.Errorf("splunk %s: %w", RedactURL(s.stream), err)
	}
	return v, err
}

// signalFlowMessage holds the fields canaryflow reads from the stream's messages (data, error, control-message).
type signalFlowMessage struct {
	Event     string         `json:"event"`
	AbortInfo map[string]any `json:"abortInfo"`
	Data      []struct {
		TsID  string   `json:"tsId"`
		Value *float64 `json:"value"`
	} `json:"data"`
	Errors []struct {
		Code    any    `json:"code"`
		Message string `json:"message"`
		Context any    `json:"context"`
	} `json:"errors"`
}

// readSignalFlow reads the Server-Sent Events stream of one computation to its end (END_OF_CHANNEL or EOF).
func readSignalFlow(r io.Reader) (float64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	var event string
	var data bytes.Buffer
	var last *float64
	series := map[string]bool{}
	dispatch := func() (bool, error) {
		defer func() { event = ""; data.Reset() }()
		if data.Len() == 0 {
			return false, nil
		}
		var m signalFlowMessage
		if err := json.Unmarshal(data.Bytes(), &m); err != nil {
			return false, fmt.Errorf("decoding %s message: %w", event, err)
		}
		switch event {
		case "data":
			for _, d := range m.Data {
				if d.Value != nil && !math.IsNaN(*d.Value) {
					series[d.TsID] = true
					last = d.Value
				}
			}
		case "error":
			msgs := make([]string, 0, len(m.Errors))
			for _, e := range m.Errors {
				msgs = append(msgs, strings.TrimSpace(fmt.Sprintf("%v %s %v", e.Code, e.Message, e.Context)))
			}
			return false, fmt.Errorf("splunk: SignalFlow program failed: %s: %w", strings.Join(msgs, "; "), ErrQueryRejected)
		case "control-message":
			switch m.Event {
			case "END_OF_CHANNEL":
				return true, nil
			case "CHANNEL_ABORT":
				info, _ := json.Marshal(m.AbortInfo)
				return false, fmt.Errorf("splunk: SignalFlow computation aborted: %s", info)
			}
		}
		return false, nil
	}
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			done, err := dispatch()
			if err != nil {
				return 0, err
			}
			if done {
				return signalFlowValue(last, series)
			}
		case strings.HasPrefix(line, ":"): // an SSE comment (keep-alive)
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("reading the SignalFlow stream: %w", err)
	}
	if _, err := dispatch(); err != nil {
		return 0, err
	}
	return signalFlowValue(last, series)
}

func signalFlowValue(last *float64, series map[string]bool) (float64, error) {
	if last == nil {
		return 0, ErrNoValues
	}
	if len(series) > 1 {
		ids := make([]string, 0, len(series))
		for id := range series {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		return 0, fmt.Errorf("splunk: the program publishes %d time series (%s): aggregate them to one, e.g. with .sum() or .mean(): %w",
			len(ids), strings.Join(ids, ", "), ErrQueryRejected)
	}
	return *last, nil
}
