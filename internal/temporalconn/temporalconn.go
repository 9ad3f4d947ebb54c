// Package temporalconn is how canaryflow's binaries connect to Temporal: a self-hosted server in plain text, TLS
// with a custom CA, mTLS with a client certificate, or Temporal Cloud with an API key. The worker and the starter
// read the same settings: their flags, canaryflow's CANARYFLOW_* variables, then Temporal's own TEMPORAL_*
// variables and configuration profiles, so one environment serves `temporal`, `starter` and `worker`.
package temporalconn

import (
	"os"
)

// Options are the connection settings canaryflow's own flags and CANARYFLOW_* variables give. An empty field is
// unset: Resolve fills it from Temporal's environment configuration, then from the defaults.
type Options struct {
	Address       string // host:port of the frontend
	Namespace     string
	TLSCA         string // PEM file of the CA that signed the server's certificate
	TLSCert       string // PEM client certificate (mTLS)
	TLSKey        string // PEM client key (mTLS)
	TLSServerName string // name to verify when it differs from the address
	APIKeyFile    string // file with a Temporal Cloud API key; implies TLS
}

// Environment variables of canaryflow's own connection settings, read by FromEnv.
const (
	EnvAddress       = "CANARYFLOW_TEMPORAL_ADDRESS"
	EnvNamespace     = "CANARYFLOW_TEMPORAL_NAMESPACE"
	EnvTLSCA         = "CANARYFLOW_TLS_CA"
	EnvTLSCert       = "CANARYFLOW_TLS_CERT"
	EnvTLSKey        = "CANARYFLOW_TLS_KEY"
	EnvTLSServerName = "CANARYFLOW_TLS_SERVER_NAME"
	EnvAPIKeyFile    = "CANARYFLOW_API_KEY_FILE"
)

// Defaults used when neither canaryflow's settings nor Temporal's name an address or a namespace.
const (
	DefaultAddress   = "127.0.0.1:7233"
	DefaultNamespace = "default"
)

// Precedence is the one sentence both binaries' help gives about where connection settings come from.
const Precedence = "Connection settings are taken, per setting, from the flags, then canaryflow's CANARYFLOW_* " +
	"variables, then Temporal's own variables (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, " +
	"TEMPORAL_TLS, TEMPORAL_TLS_*) and the profile TEMPORAL_PROFILE names (default \"default\") in the TOML file " +
	"TEMPORAL_CONFIG_FILE names (default ~/.config/temporalio/temporal.toml), exactly as the temporal CLI reads " +
	"them, then the defaults: address " + DefaultAddress + ", namespace \"" + DefaultNamespace + "\". An API key implies " +
	"TLS unless TEMPORAL_TLS=false; any TLS file or server name turns TLS on."

// FromEnv returns the CANARYFLOW_* settings of the environment; flags are bound on top of these values. An empty
// variable counts as unset.
func FromEnv() Options {
	return Options{
		Address:       os.Getenv(EnvAddress),
		Namespace:     os.Getenv(EnvNamespace),
		TLSCA:         os.Getenv(EnvTLSCA),
		TLSCert:       os.Getenv(EnvTLSCert),
		TLSKey:        os.Getenv(EnvTLSKey),
		TLSServerName: os.Getenv(EnvTLSServerName),
		APIKeyFile:    os.Getenv(EnvAPIKeyFile),
	}
}

// FlagSet is what BindFlags needs of a flag set: both the standard library's and spf13/pflag's have it.
type FlagSet interface {
	StringVar(p *string, name, value, usage string)
}

// BindFlags binds the connection flags to o, with o's current values (FromEnv's) as their defaults, so the
// worker and the starter take the same flags with the same help.
func (o *Options) BindFlags(fs FlagSet) {
	fs.StringVar(&o.Address, flagAddress, o.Address, "Temporal frontend host:port (env "+EnvAddress+", then TEMPORAL_ADDRESS or the profile; default "+DefaultAddress+")")
	fs.StringVar(&o.Namespace, flagNamespace, o.Namespace, "Temporal namespace (env "+EnvNamespace+", then TEMPORAL_NAMESPACE or the profile; default \""+DefaultNamespace+"\")")
	fs.StringVar(&o.TLSCA, flagTLSCA, o.TLSCA, "PEM file of the CA that signed the Temporal server's certificate (env "+EnvTLSCA+", then TEMPORAL_TLS_SERVER_CA_CERT_PATH)")
	fs.StringVar(&o.TLSCert, flagTLSCert, o.TLSCert, "PEM client certificate for mTLS (env "+EnvTLSCert+", then TEMPORAL_TLS_CLIENT_CERT_PATH)")
	fs.StringVar(&o.TLSKey, flagTLSKey, o.TLSKey, "PEM client key for mTLS (env "+EnvTLSKey+", then TEMPORAL_TLS_CLIENT_KEY_PATH)")
	fs.StringVar(&o.TLSServerName, flagTLSServerName, o.TLSServerName, "server name to verify, when it differs from the address (env "+EnvTLSServerName+", then TEMPORAL_TLS_SERVER_NAME)")
	fs.StringVar(&o.APIKeyFile, flagAPIKeyFile, o.APIKeyFile, "file holding a Temporal Cloud API key; implies TLS (env "+EnvAPIKeyFile+", then the key itself in TEMPORAL_API_KEY)")
}

// Flag names, also used to say where a bad value came from.
const (
	flagAddress       = "temporal-address"
	flagNamespace     = "temporal-namespace"
	flagTLSCA         = "tls-ca"
	flagTLSCert       = "tls-cert"
	flagTLSKey        = "tls-key"
	flagTLSServerName = "tls-server-name"
	flagAPIKeyFile    = "api-key-file"
)
