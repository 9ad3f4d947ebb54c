package metrics

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// InfluxDB 2.x's query API (POST /api/v2/query?org=…, "Authorization: Token …") and the Secret keys Flagger
// reads: token and org. Both are optional together: without a Secret the query goes unauthenticated.
const (
	InfluxDBTokenKey = "token"
	InfluxDBOrgKey   = "org"
)

// InfluxDB runs Flux queries and reads the _value of the first record of the annotated CSV answer.
type InfluxDB struct {
	cfg     Config
	address string
	token   string
	org     string
}

// NewInfluxDB builds an InfluxDB provider for cfg.Address; a Secret must hold token and org.
func NewInfluxDB(cfg Config) (*InfluxDB, error) {
	if cfg.Address == "" {
		return nil, fmt.Errorf("%w: influxdb needs provider.address (the InfluxDB URL, e.g. http://influxdb.monitoring:8086)", ErrInvalidConfig)
	}
	addr, err := backendAddress(cfg, "influxdb", "")
	if err != nil {
		return nil, err
	}
	i := &InfluxDB{cfg: cfg, address: addr}
	if cfg.HasSecret {
		if i.token, err = requireKey(cfg, "influxdb", InfluxDBTokenKey); err != nil {
			return nil, err
		}
		if i.org, err = requireKey(cfg, "influxdb", InfluxDBOrgKey); err != nil {
			return nil, err
		}
	}
	return i, nil
}

// influxQuery is the query API's request body: Flux with the annotated CSV dialect, as InfluxDB's own client sends.
type influxQuery struct {
	Query   string        `json:"query"`
	Type    string        `json:"type"`
	Dialect influxDialect `json:"dialect"`
}

type influxDialect struct {
	Annotations []string `json:"annotations"`
	Delimiter   string   `json:"delimiter"`
	Header      bool     `json:"header"`
}

// RunQuery returns the _value of the first record. An answer with no record is "no values found"; Flagger
// returns 0 there, which would pass a check on data that does not exist, so canaryflow maps it to the metric's
// onNoData policy instead.
func (i *InfluxDB) RunQuery(ctx context.Context, query string) (float64, error) {
	body, err := json.Marshal(influxQuery{Query: strings.TrimSpace(query), Type: "flux",
		Dialect: influxDialect{Annotations: []string{"datatype", "group", "default"}, Delimiter: ",", Header: true}})
	if err != nil {
		return 0, fmt.Errorf("influxdb request: %w", err)
	}
	u := i.address + "/api/v2/query"
	if i.org != "" {
		u += "?" + url.Values{"org": {i.org}}.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("influxdb request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/csv")
	if i.token != "" {
		req.Header.Set("Authorization", "Token "+i.token)
	}
	resp, err := i.cfg.client().Do(req)
	if err != nil {
		return 0, fmt.Errorf("influxdb %s: %w", RedactURL(i.address), redactErr(err))
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode != http.StatusOK {
		return 0, statusError("influxdb "+RedactURL(i.address), resp.StatusCode, answer)
	}
	v, err := firstFluxValue(answer)
	if err != nil && !errors.Is(err, ErrNoValues) && !errors.Is(err, ErrQueryRejected) {
		return 0, fmt.Errorf("influxdb %s: decoding response: %w", RedactURL(i.address), err)
	}
	return v, err
}

// firstFluxValue reads annotated CSV (https://docs.influxdata.com/influxdb/v2/reference/syntax/annotated-csv/):
// tables separated by annotation rows, each with a header row naming its columns. It returns the _value of the
// first data row; an error table (columns error, reference) is a rejected query.
func firstFluxValue(answer []byte) (float64, error) {
	r := csv.NewReader(bytes.NewReader(answer))
	r.FieldsPerRecord = -1
	var datatypes, defaults, header []string
	for {
		row, err := r.Read()
		if errors.Is(err, io.EOF) {
			return 0, ErrNoValues
		}
		if err != nil {
			return 0, err
		}
		if len(row) == 0 || (len(row) == 1 && strings.TrimSpace(row[0]) == "") {
			header = nil // a blank line ends a table
			continue
		}
		switch row[0] {
		case "#datatype":
			datatypes, header = row, nil
			continue
		case "#default":
			defaults, header = row, nil
			continue
		case "#group":
			header = nil
			continue
		}
		if header == nil {
			header = row
			continue
		}
		col := func(name string) int {
			for n, h := range header {
				if h == name {
					return n
				}
			}
			return -1
		}
		if e := col("error"); e >= 0 && e < len(row) {
			return 0, fmt.Errorf("influxdb: %s: %w", row[e], ErrQueryRejected)
		}
		n := col("_value")
		if n < 0 {
			return 0, fmt.Errorf("answer has no _value column (columns: %s): make the query return _value", strings.Join(header[1:], ", "))
		}
		raw := ""
		if n < len(row) {
			raw = row[n]
		}
		if raw == "" && n < len(defaults) {
			raw = defaults[n]
		}
		if raw == "" {
			return 0, ErrNoValues
		}
		typ := "double"
		if n < len(datatypes) {
			typ = datatypes[n]
		}
		// Flagger reads doubles only; integers are numbers as well, so long and unsignedLong count here too.
		switch typ {
		case "double", "long", "unsignedLong":
			v, err := strconv.ParseFloat(raw, 64)
			if err != nil {
				return 0, fmt.Errorf("_value %q is not a number: %w", raw, err)
			}
			if math.IsNaN(v) {
				return 0, ErrNoValues
			}
			return v, nil
		default:
			return 0, fmt.Errorf("influxdb: _value is of type %s, not a number: make the query return a numeric _value: %w", typ, ErrQueryRejected)
		}
	}
}
