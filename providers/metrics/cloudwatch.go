package metrics

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
)

// CloudWatch's Secret keys (the AWS SDKs' names); without a Secret the worker's AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN environment variables are used.
const (
	CloudWatchAccessKeyIDKey     = "aws_access_key_id"
	CloudWatchSecretAccessKeyKey = "aws_secret_access_key"
	CloudWatchSessionTokenKey    = "aws_session_token"
	// cloudWatchWindowFactor: the window is this many metric intervals, because CloudWatch publishes late.
	cloudWatchWindowFactor = 5
)

// CloudWatch runs GetMetricData (Query API, version 2010-08-01, SigV4-signed). The query is Flagger's: a JSON
// array of MetricDataQuery objects ([{"Id":"e1","Expression":"m1/m2"},{"Id":"m1","MetricStat":{…}}]).
type CloudWatch struct {
	cfg      Config
	endpoint string
	region   string
	creds    awsCredentials
}

// NewCloudWatch builds a CloudWatch provider for cfg.Region (endpoint https://monitoring.<region>.amazonaws.com
// unless cfg.Address says otherwise).
func NewCloudWatch(cfg Config) (*CloudWatch, error) {
	if cfg.Region == "" {
		return nil, fmt.Errorf("%w: cloudwatch needs provider.region", ErrInvalidConfig)
	}
	endpoint, err := backendAddress(cfg, "cloudwatch", "https://monitoring."+cfg.Region+".amazonaws.com")
	if err != nil {
		return nil, err
	}
	c := &CloudWatch{cfg: cfg, endpoint: endpoint, region: cfg.Region}
	if cfg.HasSecret {
		if c.creds.AccessKeyID, err = requireKey(cfg, "cloudwatch", CloudWatchAccessKeyIDKey); err != nil {
			return nil, err
		}
		if c.creds.SecretAccessKey, err = requireKey(cfg, "cloudwatch", CloudWatchSecretAccessKeyKey); err != nil {
			return nil, err
		}
		c.creds.SessionToken = strings.TrimSpace(string(cfg.Credentials[CloudWatchSessionTokenKey]))
	} else {
		c.creds = awsCredentials{os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"), os.Getenv("AWS_SESSION_TOKEN")}
		if c.creds.AccessKeyID == "" || c.creds.SecretAccessKey == "" {
			return nil, fmt.Errorf("%w: cloudwatch needs a secretRef with %s and %s (or the worker's AWS_* environment)",
				ErrInvalidConfig, CloudWatchAccessKeyIDKey, CloudWatchSecretAccessKeyKey)
		}
	}
	return c, nil
}

// flattenQuery writes a JSON value in the Query protocol's form: object fields as .Name, list items as .member.N.
func flattenQuery(prefix string, v any, out url.Values) {
	switch t := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			flattenQuery(prefix+"."+k, t[k], out)
		}
	case []any:
		for i, item := range t {
			flattenQuery(prefix+".member."+strconv.Itoa(i+1), item, out)
		}
	case bool:
		out.Set(prefix, strconv.FormatBool(t))
	case json.Number:
		out.Set(prefix, t.String())
	case string:
		out.Set(prefix, t)
	}
}

type getMetricDataResponse struct {
	Results []struct {
		ID         string   `xml:"Id"`
		StatusCode string   `xml:"StatusCode"`
		Values     []string `xml:"Values>member"`
	} `xml:"GetMetricDataResult>MetricDataResults>member"`
}

type awsErrorResponse struct {
	Code    string `xml:"Error>Code"`
	Message string `xml:"Error>Message"`
}

// RunQuery returns the newest value of the first result that has one (results come newest first).
func (c *CloudWatch) RunQuery(ctx context.Context, query string) (float64, error) {
	dec := json.NewDecoder(strings.NewReader(query))
	dec.UseNumber()
	var queries []any
	if err := dec.Decode(&queries); err != nil || len(queries) == 0 {
		return 0, fmt.Errorf("cloudwatch query must be a JSON array of MetricDataQuery objects: %w", ErrQueryRejected)
	}
	now := c.cfg.now().UTC()
	form := url.Values{}
	form.Set("Action", "GetMetricData")
	form.Set("Version", "2010-08-01")
	form.Set("StartTime", now.Add(-cloudWatchWindowFactor*c.cfg.interval()).Format("2006-01-02T15:04:05Z"))
	form.Set("EndTime", now.Format("2006-01-02T15:04:05Z"))
	flattenQuery("MetricDataQueries", queries, form)
	body := []byte(form.Encode())

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint+"/", bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("cloudwatch request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	signV4(req, body, c.creds, c.region, "monitoring", now)
	resp, err := c.cfg.client().Do(req)
	if err != nil {
		return 0, fmt.Errorf("cloudwatch %s: %w", RedactURL(c.endpoint), redactErr(err))
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode != http.StatusOK {
		var e awsErrorResponse
		if xml.Unmarshal(raw, &e) == nil && e.Code != "" {
			raw = []byte(e.Code + ": " + e.Message)
		}
		return 0, statusError("cloudwatch "+RedactURL(c.endpoint), resp.StatusCode, raw)
	}
	var r getMetricDataResponse
	if err := xml.Unmarshal(raw, &r); err != nil {
		return 0, fmt.Errorf("cloudwatch %s: decoding response: %w", RedactURL(c.endpoint), err)
	}
	for _, res := range r.Results {
		if len(res.Values) > 0 {
			v, err := strconv.ParseFloat(strings.TrimSpace(res.Values[0]), 64)
			if err != nil {
				return 0, fmt.Errorf("cloudwatch value %q of %s: %w", res.Values[0], res.ID, err)
			}
			return v, nil
		}
	}
	return 0, ErrNoValues
}
