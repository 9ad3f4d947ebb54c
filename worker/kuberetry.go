package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"k8s.io/client-go/rest"
)

// kubeTryTimeout bounds one try: canaryflow's requests are single-object reads and applies that an API server
// answers in milliseconds, so a try with no answer after this long is hung (a stopped or partitioned server, a
// lost connection) and is better tried again than waited for until the activity's own deadline. A variable so
// that a test need not wait as long.
var kubeTryTimeout = 10 * time.Second

// The worker's own retry of Kubernetes API requests, inside one activity attempt.
const (
	// kubeTries is how many times one request is sent at most; the backoff between tries starts at kubeBackoff
	// and doubles, so four tries span about two seconds plus the tries themselves.
	kubeTries   = 4
	kubeBackoff = 250 * time.Millisecond
)

// retryKube returns a copy of c whose clients try again, within one activity attempt, a request that failed in
// a way that passes: a 500, 502, 503 or 504 answer, or no answer at all (a reset or closed connection, nothing
// within kubeTryTimeout). Without it, one such failure failed the whole activity, and an activity makes up to a
// few dozen requests (initialisation), so at a few failed requests in a hundred most attempts failed and the
// activity ran out of time (seen through a fault proxy: initialisation never completed); and a hung request held
// the attempt until the activity's start-to-close timeout (30 s).
//
// Replaying a request is safe because canaryflow writes by server-side apply (the same apply twice is one
// change), deletes what it finds (a replayed delete is NotFound, which is success), and creates only access
// reviews. 429 answers are client-go's to retry (it honours Retry-After); 409 Conflict is not retried here: it
// needs the object read again, which the activity's retry does.
func retryKube(c *rest.Config) *rest.Config {
	c = rest.CopyConfig(c)
	c.Wrap(func(next http.RoundTripper) http.RoundTripper { return retryingTransport{next: next} })
	return c
}

type retryingTransport struct {
	next http.RoundTripper
}

func (t retryingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	// A watch or a log stream is long by design; a body that cannot be sent again cannot be retried.
	q := r.URL.Query()
	if q.Get("watch") == "true" || q.Get("follow") == "true" || (r.Body != nil && r.Body != http.NoBody && r.GetBody == nil) {
		return t.next.RoundTrip(r)
	}
	backoff := kubeBackoff
	for try := 1; ; try++ {
		resp, err := t.try(r)
		if try == kubeTries || r.Context().Err() != nil || !passing(resp, err) {
			return resp, err
		}
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		select {
		case <-r.Context().Done():
			return nil, r.Context().Err()
		case <-time.After(backoff):
		}
		backoff *= 2
	}
}

// try sends the request once, with its own deadline of kubeTryTimeout, which ends when its answer's body is
// closed.
func (t retryingTransport) try(r *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(r.Context(), kubeTryTimeout)
	req := r.Clone(ctx)
	if r.GetBody != nil {
		body, err := r.GetBody()
		if err != nil {
			cancel()
			return nil, err
		}
		req.Body = body
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// passing reports whether a try failed in a way another try may not: a server error that says nothing about the
// request itself, or no answer.
func passing(resp *http.Response, err error) bool {
	if err != nil {
		return !errors.Is(err, context.Canceled)
	}
	switch resp.StatusCode {
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		// With Retry-After, client-go waits and retries itself.
		return resp.Header.Get("Retry-After") == ""
	}
	return false
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}
