package temporalconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
)

// Conn is a resolved connection: every setting taken from the first layer that gives it, and where it came from,
// so that an error names the flag, variable or profile to fix.
type Conn struct {
	Address   string
	Namespace string
	// TLS says whether the connection will use TLS (for logs).
	TLS bool

	profile    envconfig.ClientConfigProfile
	apiKeyFile string
	from       map[string]string // setting → the flag, variable, profile or default that gave it
}

// Settings whose source Conn remembers.
const (
	setAddress    = "address"
	setNamespace  = "namespace"
	setAPIKey     = "API key"
	setCertPath   = "client certificate path"
	setCertData   = "client certificate data"
	setKeyPath    = "client key path"
	setKeyData    = "client key data"
	setCAPath     = "server CA path"
	setCAData     = "server CA data"
	setServerName = "server name"
)

// Temporal's variables that choose the configuration file and its profile.
const (
	envConfigFile = "TEMPORAL_CONFIG_FILE"
	envProfile    = "TEMPORAL_PROFILE"
)

// temporalEnv maps the TEMPORAL_* variables envconfig applies to the setting each gives.
var temporalEnv = []struct{ name, setting string }{
	{"TEMPORAL_ADDRESS", setAddress},
	{"TEMPORAL_NAMESPACE", setNamespace},
	{"TEMPORAL_API_KEY", setAPIKey},
	{"TEMPORAL_TLS_CLIENT_CERT_PATH", setCertPath},
	{"TEMPORAL_TLS_CLIENT_CERT_DATA", setCertData},
	{"TEMPORAL_TLS_CLIENT_KEY_PATH", setKeyPath},
	{"TEMPORAL_TLS_CLIENT_KEY_DATA", setKeyData},
	{"TEMPORAL_TLS_SERVER_CA_CERT_PATH", setCAPath},
	{"TEMPORAL_TLS_SERVER_CA_CERT_DATA", setCAData},
	{"TEMPORAL_TLS_SERVER_NAME", setServerName},
}

// legacyTLSEnv are the older TLS variables the temporal CLI still honours over everything else of Temporal's.
var legacyTLSEnv = []struct {
	name, setting string
	apply         func(t *envconfig.ClientConfigTLS, v string)
}{
	{"TEMPORAL_TLS_CERT", setCertPath, func(t *envconfig.ClientConfigTLS, v string) { t.ClientCertPath = v }},
	{"TEMPORAL_TLS_CERT_DATA", setCertData, func(t *envconfig.ClientConfigTLS, v string) { t.ClientCertData = []byte(v) }},
	{"TEMPORAL_TLS_KEY", setKeyPath, func(t *envconfig.ClientConfigTLS, v string) { t.ClientKeyPath = v }},
	{"TEMPORAL_TLS_KEY_DATA", setKeyData, func(t *envconfig.ClientConfigTLS, v string) { t.ClientKeyData = []byte(v) }},
	{"TEMPORAL_TLS_CA", setCAPath, func(t *envconfig.ClientConfigTLS, v string) { t.ServerCACertPath = v }},
	{"TEMPORAL_TLS_CA_DATA", setCAData, func(t *envconfig.ClientConfigTLS, v string) { t.ServerCACertData = []byte(v) }},
}

// Resolve layers the settings: o (flags over CANARYFLOW_* variables), then Temporal's environment configuration
// as the temporal CLI reads it (TEMPORAL_* variables over the profile of the TOML file), then the defaults. It
// reads no certificate or key file: ClientOptions does, so that a file mounted later is still found.
func (o Options) Resolve() (Conn, error) {
	c := Conn{from: map[string]string{}}
	// Temporal's own layer is read by the SDK's envconfig, the code the temporal CLI uses, so both read the same
	// file, profile and variables the same way, and follow its format as it grows.
	prof, err := loadProfile(c.from)
	if err != nil {
		return Conn{}, err
	}
	var problems []string
	for _, name := range []string{"TEMPORAL_TLS", "TEMPORAL_TLS_DISABLE_HOST_VERIFICATION"} {
		// envconfig ignores a value it cannot read; a typo here would silently turn TLS on or off.
		switch v := os.Getenv(name); strings.ToLower(v) {
		case "", "1", "0", "true", "false":
		default:
			problems = append(problems, fmt.Sprintf("%s=%q: write true or false (or 1 or 0)", name, v))
		}
	}
	if err := prof.ApplyEnvVars(envconfig.EnvLookupOS); err != nil {
		return Conn{}, fmt.Errorf("apply the TEMPORAL_* variables: %w", err)
	}
	for _, e := range temporalEnv {
		if _, ok := os.LookupEnv(e.name); ok {
			c.from[e.setting] = e.name
		}
	}
	for _, e := range legacyTLSEnv {
		if v := os.Getenv(e.name); v != "" {
			e.apply(tlsOn(&prof), v)
			c.from[e.setting] = e.name
		}
	}

	// canaryflow's own settings win over Temporal's. A TLS file or name of ours turns TLS on even if Temporal's
	// settings turned it off: it cannot mean anything else.
	ours := []struct {
		value, flag, env string
		settings         []string // the first is set, the others (the same thing given as data) are dropped
		apply            func(v string)
	}{
		{o.Address, flagAddress, EnvAddress, []string{setAddress}, func(v string) { prof.Address = v }},
		{o.Namespace, flagNamespace, EnvNamespace, []string{setNamespace}, func(v string) { prof.Namespace = v }},
		{o.TLSCA, flagTLSCA, EnvTLSCA, []string{setCAPath, setCAData}, func(v string) {
			t := tlsOn(&prof)
			t.ServerCACertPath, t.ServerCACertData = v, nil
		}},
		{o.TLSCert, flagTLSCert, EnvTLSCert, []string{setCertPath, setCertData}, func(v string) {
			t := tlsOn(&prof)
			t.ClientCertPath, t.ClientCertData = v, nil
		}},
		{o.TLSKey, flagTLSKey, EnvTLSKey, []string{setKeyPath, setKeyData}, func(v string) {
			t := tlsOn(&prof)
			t.ClientKeyPath, t.ClientKeyData = v, nil
		}},
		{o.TLSServerName, flagTLSServerName, EnvTLSServerName, []string{setServerName}, func(v string) { tlsOn(&prof).ServerName = v }},
		{o.APIKeyFile, flagAPIKeyFile, EnvAPIKeyFile, []string{setAPIKey}, func(v string) { c.apiKeyFile, prof.APIKey = v, "" }},
	}
	for _, s := range ours {
		if s.value == "" {
			continue
		}
		s.apply(s.value)
		for _, drop := range s.settings[1:] {
			delete(c.from, drop)
		}
		c.from[s.settings[0]] = ourSource(s.flag, s.env, s.value)
	}

	if prof.Address == "" {
		prof.Address, c.from[setAddress] = DefaultAddress, "the default"
	}
	if prof.Namespace == "" {
		prof.Namespace, c.from[setNamespace] = DefaultNamespace, "the default"
	}
	problems = append(problems, c.checkAddress(prof.Address)...)
	if prof.TLS != nil && !prof.TLS.Disabled {
		problems = append(problems, c.checkTLSPairs(prof.TLS)...)
	}
	if len(problems) > 0 {
		return Conn{}, errors.New(strings.Join(problems, "\n"))
	}
	c.profile = prof
	c.Address, c.Namespace = prof.Address, prof.Namespace
	if prof.TLS != nil {
		c.TLS = !prof.TLS.Disabled
	} else {
		c.TLS = prof.APIKey != "" || c.apiKeyFile != ""
	}
	return c, nil
}

// loadProfile reads Temporal's configuration file and picks its profile as envconfig does, with errors that name
// the variable, file and profile.
func loadProfile(from map[string]string) (envconfig.ClientConfigProfile, error) {
	file, fileVar := os.Getenv(envConfigFile), envConfigFile
	if file == "" {
		file, fileVar = envconfig.DefaultConfigFilePath(), "the Temporal config file"
	}
	var conf envconfig.ClientConfig
	if file != "" {
		var err error
		if conf, err = envconfig.LoadClientConfig(envconfig.LoadClientConfigOptions{ConfigFilePath: file}); err != nil {
			return envconfig.ClientConfigProfile{}, fmt.Errorf("%s %s: %w", fileVar, file, err)
		}
	}
	name := os.Getenv(envProfile)
	p := conf.Profiles[name]
	if name == "" {
		p = conf.Profiles[envconfig.DefaultConfigFileProfile]
		name = envconfig.DefaultConfigFileProfile
	} else if p == nil {
		has := "it does not exist"
		if _, err := os.Stat(file); err == nil {
			names := make([]string, 0, len(conf.Profiles))
			for n := range conf.Profiles {
				names = append(names, strconv.Quote(n))
			}
			sort.Strings(names)
			has = "its profiles: " + strings.Join(names, ", ")
			if len(names) == 0 {
				has = "it has no profile"
			}
		}
		return envconfig.ClientConfigProfile{}, fmt.Errorf("%s=%q: no such profile in %s (%s); fix %s or set %s to the file that has it",
			envProfile, name, file, has, envProfile, envConfigFile)
	}
	if p == nil {
		return envconfig.ClientConfigProfile{}, nil
	}
	src := fmt.Sprintf("profile %q of %s", name, file)
	for setting, set := range map[string]bool{
		setAddress: p.Address != "", setNamespace: p.Namespace != "", setAPIKey: p.APIKey != "",
	} {
		if set {
			from[setting] = src
		}
	}
	if t := p.TLS; t != nil {
		for setting, set := range map[string]bool{
			setCertPath: t.ClientCertPath != "", setCertData: len(t.ClientCertData) > 0,
			setKeyPath: t.ClientKeyPath != "", setKeyData: len(t.ClientKeyData) > 0,
			setCAPath: t.ServerCACertPath != "", setCAData: len(t.ServerCACertData) > 0,
			setServerName: t.ServerName != "",
		} {
			if set {
				from[setting] = src
			}
		}
	}
	return *p, nil
}

// tlsOn returns the profile's TLS settings, enabled.
func tlsOn(p *envconfig.ClientConfigProfile) *envconfig.ClientConfigTLS {
	if p.TLS == nil {
		p.TLS = &envconfig.ClientConfigTLS{}
	}
	p.TLS.Disabled = false
	return p.TLS
}

// ourSource says whether a value of canaryflow's came from its variable or its flag (the flag when both are set
// and differ, as the flag wins).
func ourSource(flag, env, value string) string {
	if v, ok := os.LookupEnv(env); ok && v == value {
		return env
	}
	return "--" + flag
}

func (c Conn) checkAddress(addr string) []string {
	if strings.Contains(addr, "://") {
		return nil // a gRPC target such as dns:///host:port, for the SDK to read
	}
	host, port, err := net.SplitHostPort(addr)
	if err == nil && host != "" {
		if _, perr := strconv.ParseUint(port, 10, 16); perr == nil {
			return nil
		}
	}
	return []string{fmt.Sprintf("Temporal address %q (from %s) is not host:port, e.g. %s", addr, c.from[setAddress], DefaultAddress)}
}

// checkTLSPairs reports a certificate without its key (or the reverse), and a file given both as a path and as
// data, before envconfig refuses them without saying where they came from.
func (c Conn) checkTLSPairs(t *envconfig.ClientConfigTLS) []string {
	var problems []string
	for _, pair := range []struct {
		what       string
		path, data string
		hasP, hasD bool
	}{
		{"client certificate", setCertPath, setCertData, t.ClientCertPath != "", len(t.ClientCertData) > 0},
		{"client key", setKeyPath, setKeyData, t.ClientKeyPath != "", len(t.ClientKeyData) > 0},
		{"server CA", setCAPath, setCAData, t.ServerCACertPath != "", len(t.ServerCACertData) > 0},
	} {
		if pair.hasP && pair.hasD {
			problems = append(problems, fmt.Sprintf("the TLS %s is given both as a file (%s) and as data (%s): keep one",
				pair.what, c.from[pair.path], c.from[pair.data]))
		}
	}
	hasCert := t.ClientCertPath != "" || len(t.ClientCertData) > 0
	hasKey := t.ClientKeyPath != "" || len(t.ClientKeyData) > 0
	const pairHint = "--tls-cert and --tls-key go together (as do TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH): set both for mTLS, or neither"
	switch {
	case hasCert && !hasKey:
		problems = append(problems, fmt.Sprintf("the TLS client certificate (from %s) has no key: %s", c.source(setCertPath, setCertData), pairHint))
	case hasKey && !hasCert:
		problems = append(problems, fmt.Sprintf("the TLS client key (from %s) has no certificate: %s", c.source(setKeyPath, setKeyData), pairHint))
	case hasCert && hasKey && (t.ClientCertPath != "") != (t.ClientKeyPath != ""):
		problems = append(problems, fmt.Sprintf("the TLS client certificate (from %s) and key (from %s) must both be files or both be data",
			c.source(setCertPath, setCertData), c.source(setKeyPath, setKeyData)))
	}
	return problems
}

// source is where the first of the settings that has one came from.
func (c Conn) source(settings ...string) string {
	for _, s := range settings {
		if f, ok := c.from[s]; ok {
			return f
		}
	}
	return "nowhere"
}

// ClientOptions builds the SDK's client options (logger, metrics and data converter are the caller's to add). It
// reads the API key and TLS files, so a missing or bad file is reported here, naming where it was set.
func (c Conn) ClientOptions() (client.Options, error) {
	prof := c.profile
	if c.apiKeyFile != "" {
		b, err := os.ReadFile(c.apiKeyFile)
		if err != nil {
			return client.Options{}, fmt.Errorf("read the API key file (from %s): %w", c.from[setAPIKey], err)
		}
		if prof.APIKey = strings.TrimSpace(string(b)); prof.APIKey == "" {
			return client.Options{}, fmt.Errorf("the API key file %s (from %s) is empty", c.apiKeyFile, c.from[setAPIKey])
		}
	}
	if t := prof.TLS; t != nil && !t.Disabled {
		if err := c.checkTLSFiles(t); err != nil {
			return client.Options{}, err
		}
	}
	opts, err := prof.ToClientOptions(envconfig.ToClientOptionsRequest{})
	if err != nil {
		return client.Options{}, fmt.Errorf("the Temporal connection settings: %w", err)
	}
	return opts, nil
}

// checkTLSFiles reads the CA, certificate and key as envconfig will, to say which setting holds a bad one.
func (c Conn) checkTLSFiles(t *envconfig.ClientConfigTLS) error {
	if ca := t.ServerCACertData; t.ServerCACertPath != "" || len(ca) > 0 {
		what := "TLS CA data (from " + c.from[setCAData] + ")"
		if t.ServerCACertPath != "" {
			what = "TLS CA file " + t.ServerCACertPath + " (from " + c.from[setCAPath] + ")"
			var err error
			if ca, err = os.ReadFile(t.ServerCACertPath); err != nil {
				return fmt.Errorf("read the %s: %w", what, err)
			}
		}
		if !x509.NewCertPool().AppendCertsFromPEM(ca) {
			return fmt.Errorf("the %s holds no PEM certificate", what)
		}
	}
	switch {
	case t.ClientCertPath != "":
		if _, err := tls.LoadX509KeyPair(t.ClientCertPath, t.ClientKeyPath); err != nil {
			return fmt.Errorf("load the TLS client certificate %s (from %s) and key %s (from %s): %w",
				t.ClientCertPath, c.from[setCertPath], t.ClientKeyPath, c.from[setKeyPath], err)
		}
	case len(t.ClientCertData) > 0:
		if _, err := tls.X509KeyPair(t.ClientCertData, t.ClientKeyData); err != nil {
			return fmt.Errorf("load the TLS client certificate (from %s) and key (from %s): %w",
				c.from[setCertData], c.from[setKeyData], err)
		}
	}
	return nil
}
