package metrics

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
)

// Google Cloud Monitoring (Stackdriver): MQL through projects.timeSeries.query, as Flagger's provider sends it,
// with the Secret keys Flagger reads.
const (
	StackdriverDefaultAddress = "https://monitoring.googleapis.com"
	StackdriverProjectKey     = "project"
	// StackdriverServiceAccountKey holds a service account's JSON key; without it the worker's Application
	// Default Credentials are used (Workload Identity on GKE).
	StackdriverServiceAccountKey = "serviceAccountKey"
	stackdriverScope             = "https://www.googleapis.com/auth/monitoring.read"
)

// errBadServiceAccountKey does not wrap the parse error, which may quote the key.
var errBadServiceAccountKey = fmt.Errorf("%w: stackdriver Secret key %q is not a service account JSON key (type service_account)",
	ErrInvalidConfig, StackdriverServiceAccountKey)

// Stackdriver runs Monitoring Query Language queries against one project.
type Stackdriver struct {
	cfg     Config
	address string
	project string
	saKey   []byte
}

// NewStackdriver builds a Cloud Monitoring provider; the Secret must hold project and may hold serviceAccountKey.
func NewStackdriver(cfg Config) (*Stackdriver, error) {
	if !cfg.HasSecret {
		return nil, fmt.Errorf("%w: stackdriver needs a secretRef whose Secret holds %q (the project ID) and optionally %q",
			ErrInvalidConfig, StackdriverProjectKey, StackdriverServiceAccountKey)
	}
	addr, err := backendAddress(cfg, "stackdriver", StackdriverDefaultAddress)
	if err != nil {
		return nil, err
	}
	project, err := requireKey(cfg, "stackdriver", StackdriverProjectKey)
	if err != nil {
		return nil, err
	}
	s := &Stackdriver{cfg: cfg, address: addr, project: project}
	if key, ok := cfg.Credentials[StackdriverServiceAccountKey]; ok && len(bytes.TrimSpace(key)) > 0 {
		// Parsed here too, so a broken key is a problem of the spec, reported before any query.
		if _, err := google.CredentialsFromJSONWithType(context.Background(), key, google.ServiceAccount, stackdriverScope); err != nil {
			return nil, errBadServiceAccountKey
		}
		s.saKey = key
	}
	return s, nil
}

// accessToken gets an OAuth2 token for the monitoring.read scope: from the service account key (a signed JWT
// exchanged at the key's token_uri) or, without one, from Application Default Credentials.
func (s *Stackdriver) accessToken(ctx context.Context) (string, error) {
	ctx = context.WithValue(ctx, oauth2.HTTPClient, s.cfg.client())
	var creds *google.Credentials
	var err error
	if s.saKey != nil {
		creds, err = google.CredentialsFromJSONWithType(ctx, s.saKey, google.ServiceAccount, stackdriverScope)
		if err != nil {
			return "", errBadServiceAccountKey
		}
	} else if creds, err = google.FindDefaultCredentials(ctx, stackdriverScope); err != nil {
		return "", fmt.Errorf("%w: stackdriver: no %q in the Secret and no Application Default Credentials on the worker: %v",
			ErrInvalidConfig, StackdriverServiceAccountKey, err)
	}
	tok, err := creds.TokenSource.Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode >= 400 && re.Response.StatusCode < 500 {
			// Google's answer names the problem ({"error": "invalid_grant", "error_description": …}).
			var why struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
			}
			_ = json.Unmarshal(re.Body, &why)
			return "", fmt.Errorf("stackdriver: the token endpoint refused the credentials (%d %s: %s): check the service account key: %w",
				re.Response.StatusCode, why.Error, why.Description, ErrQueryRejected)
		}
		return "", fmt.Errorf("stackdriver: getting an access token: %w", redactErr(err))
	}
	return tok.AccessToken, nil
}

type stackdriverAnswer struct {
	TimeSeriesData []struct {
		PointData []struct {
			Values []struct {
				DoubleValue *protoDouble `json:"doubleValue"`
				// Int64Value is a string: proto3's JSON form of int64.
				Int64Value *string `json:"int64Value"`
			} `json:"values"`
		} `json:"pointData"`
	} `json:"timeSeriesData"`
}

// RunQuery posts the MQL to projects/<project>/timeSeries:query and returns the first value of the first point
// of the first series (MQL lists the newest point first), as Flagger does. Flagger reads doubles only; an int64
// value is a number too, so it counts here.
func (s *Stackdriver) RunQuery(ctx context.Context, query string) (float64, error) {
	token, err := s.accessToken(ctx)
	if err != nil {
		return 0, err
	}
	body, err := json.Marshal(map[string]string{"query": strings.TrimSpace(query)})
	if err != nil {
		return 0, fmt.Errorf("stackdriver request: %w", err)
	}
	u := s.address + "/v3/projects/" + url.PathEscape(s.project) + "/timeSeries:query"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("stackdriver request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.cfg.client().Do(req)
	if err != nil {
		return 0, fmt.Errorf("stackdriver %s: %w", RedactURL(s.address), redactErr(err))
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode != http.StatusOK {
		return 0, statusError("stackdriver "+RedactURL(s.address)+" project "+s.project, resp.StatusCode, answer)
	}
	var a stackdriverAnswer
	if err := json.Unmarshal(answer, &a); err != nil {
		return 0, fmt.Errorf("stackdriver %s: decoding response: %w", RedactURL(s.address), err)
	}
	if len(a.TimeSeriesData) == 0 || len(a.TimeSeriesData[0].PointData) == 0 || len(a.TimeSeriesData[0].PointData[0].Values) == 0 {
		return 0, ErrNoValues
	}
	v := a.TimeSeriesData[0].PointData[0].Values[0]
	switch {
	case v.DoubleValue != nil:
		if math.IsNaN(float64(*v.DoubleValue)) {
			return 0, ErrNoValues
		}
		return float64(*v.DoubleValue), nil
	case v.Int64Value != nil:
		n, err := strconv.ParseInt(*v.Int64Value, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("stackdriver %s: int64Value %q is not an integer", RedactURL(s.address), *v.Int64Value)
		}
		return float64(n), nil
	default:
		return 0, fmt.Errorf("stackdriver: the query's first value is neither a double nor an int64 (a distribution or bool?): make the MQL return a number: %w", ErrQueryRejected)
	}
}

// protoDouble is a double in proto3's JSON form: a number, or the strings "NaN", "Infinity", "-Infinity".
type protoDouble float64

// UnmarshalJSON accepts both forms.
func (d *protoDouble) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("doubleValue %q is not a number", s)
		}
		*d = protoDouble(f)
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*d = protoDouble(f)
	return nil
}
