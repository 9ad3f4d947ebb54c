// Package temporalconn is how canaryflow's binaries connect to Temporal: a self-hosted server in plain text, TLS
// with a custom CA, mTLS with a client certificate, or Temporal Cloud with an API key. The worker and the starter
// read the same CANARYFLOW_* environment variables, so one setting serves both.
package temporalconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"go.temporal.io/sdk/client"
)

// Options say where Temporal is and how to authenticate.
type Options struct {
	Address       string // host:port of the frontend
	Namespace     string
	TLSCA         string // PEM file of the CA that signed the server's certificate
	TLSCert       string // PEM client certificate (mTLS)
	TLSKey        string // PEM client key (mTLS)
	TLSServerName string // name to verify when it differs from the address
	APIKeyFile    string // file with a Temporal Cloud API key; implies TLS
}

// Environment variables read by FromEnv.
const (
	EnvAddress       = "CANARYFLOW_TEMPORAL_ADDRESS"
	EnvNamespace     = "CANARYFLOW_TEMPORAL_NAMESPACE"
	EnvTLSCA         = "CANARYFLOW_TLS_CA"
	EnvTLSCert       = "CANARYFLOW_TLS_CERT"
	EnvTLSKey        = "CANARYFLOW_TLS_KEY"
	EnvTLSServerName = "CANARYFLOW_TLS_SERVER_NAME"
	EnvAPIKeyFile    = "CANARYFLOW_API_KEY_FILE"
)

// FromEnv returns the options the environment sets, with 127.0.0.1:7233 and namespace default otherwise; flags
// are bound on top of these values.
func FromEnv() Options {
	env := func(name, def string) string {
		if v, ok := os.LookupEnv(name); ok {
			return v
		}
		return def
	}
	return Options{
		Address:       env(EnvAddress, "127.0.0.1:7233"),
		Namespace:     env(EnvNamespace, "default"),
		TLSCA:         os.Getenv(EnvTLSCA),
		TLSCert:       os.Getenv(EnvTLSCert),
		TLSKey:        os.Getenv(EnvTLSKey),
		TLSServerName: os.Getenv(EnvTLSServerName),
		APIKeyFile:    os.Getenv(EnvAPIKeyFile),
	}
}

// Check reports settings that cannot work together, before anything connects.
func (o Options) Check() error {
	var problems []string
	if o.Address == "" {
		problems = append(problems, "the Temporal address is empty: set --temporal-address host:port")
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		problems = append(problems, "--tls-cert and --tls-key go together: set both for mTLS, or neither")
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n"))
	}
	return nil
}

// ClientOptions builds the SDK's client options (logger and metrics are the caller's to add).
func (o Options) ClientOptions() (client.Options, error) {
	opts := client.Options{HostPort: o.Address, Namespace: o.Namespace}
	tlsConf, err := o.tlsConfig()
	if err != nil {
		return opts, err
	}
	opts.ConnectionOptions.TLS = tlsConf
	if o.APIKeyFile != "" {
		key, err := os.ReadFile(o.APIKeyFile)
		if err != nil {
			return opts, fmt.Errorf("read the API key file: %w", err)
		}
		opts.Credentials = client.NewAPIKeyStaticCredentials(strings.TrimSpace(string(key)))
	}
	return opts, nil
}

func (o Options) tlsConfig() (*tls.Config, error) {
	if o.TLSCA == "" && o.TLSCert == "" && o.APIKeyFile == "" {
		return nil, nil
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.TLSServerName}
	if o.TLSCA != "" {
		pem, err := os.ReadFile(o.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("read the TLS CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS CA file %s holds no PEM certificate", o.TLSCA)
		}
		conf.RootCAs = pool
	}
	if o.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("load the TLS client certificate and key: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}
