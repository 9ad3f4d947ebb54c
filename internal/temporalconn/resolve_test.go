package temporalconn

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/canaryflow/canaryflow/internal/temporalconn/temporalconntest"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
)

// writePEMs writes a self-signed certificate (usable as CA and as client certificate) and its key to dir.
func writePEMs(t *testing.T, dir string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "temporalconn-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	files := map[string][]byte{
		"cert.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"key.pem":  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		"bad.pem":  []byte("not a certificate"),
		"apikey":   []byte("key-from-file\n"),
		"empty":    nil,
	}
	for name, b := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o600))
	}
}

const profiles = `
[profile.default]
address = "default.example:7233"
namespace = "from-default-profile"

[profile.staging]
address = "staging.example:7233"
namespace = "from-staging-profile"
api_key = "key-from-profile"
[profile.staging.tls]
server_name = "staging.tmprl.cloud"

[profile.plain]
address = "plain.example:7233"
api_key = "key-from-profile"
[profile.plain.tls]
disabled = true

[profile.data]
address = "data.example:7233"
[profile.data.tls]
client_cert_data = "not a certificate"

[profile.badaddr]
address = "no-port.example"

[profile.meta]
address = "meta.example:7233"
[profile.meta.grpc_meta]
x-team = "rollouts"
`

func TestResolvePrecedenceAndTemporalSettings(t *testing.T) {
	type want struct {
		addr, ns string
		tls      bool
		err      string // Resolve's error contains every line of it
		optsErr  string // ClientOptions' error contains it
		opts     func(t *testing.T, o client.Options)
	}
	hasCreds := func(t *testing.T, o client.Options) { require.NotNil(t, o.Credentials, "an API key is sent") }
	for _, tc := range []struct {
		name     string
		env      map[string]string // $DIR is the directory of the PEM files and the profile file
		flags    []string
		profiles bool // write profiles to $DIR/temporal.toml, at the default path unless TEMPORAL_CONFIG_FILE says
		want     want
	}{
		{name: "nothing set: the defaults, plain text",
			want: want{addr: "127.0.0.1:7233", ns: "default"}},
		{name: "TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE",
			env:  map[string]string{"TEMPORAL_ADDRESS": "temporal.example:7233", "TEMPORAL_NAMESPACE": "rollouts"},
			want: want{addr: "temporal.example:7233", ns: "rollouts"}},
		{name: "CANARYFLOW_* win per setting, TEMPORAL_* fill the rest",
			env: map[string]string{"TEMPORAL_ADDRESS": "temporal.example:7233", "TEMPORAL_NAMESPACE": "rollouts",
				"CANARYFLOW_TEMPORAL_ADDRESS": "ours.example:7233"},
			want: want{addr: "ours.example:7233", ns: "rollouts"}},
		{name: "flags win over CANARYFLOW_* and TEMPORAL_*",
			env: map[string]string{"TEMPORAL_ADDRESS": "temporal.example:7233", "TEMPORAL_NAMESPACE": "rollouts",
				"CANARYFLOW_TEMPORAL_ADDRESS": "ours.example:7233", "CANARYFLOW_TEMPORAL_NAMESPACE": "ours"},
			flags: []string{"--temporal-address", "flag.example:7233", "--temporal-namespace", "flagged"},
			want:  want{addr: "flag.example:7233", ns: "flagged"}},
		{name: "TEMPORAL_API_KEY implies TLS",
			env:  map[string]string{"TEMPORAL_API_KEY": "secret"},
			want: want{addr: "127.0.0.1:7233", ns: "default", tls: true, opts: hasCreds}},
		{name: "TEMPORAL_TLS=false keeps an API key in plain text, as the temporal CLI does",
			env:  map[string]string{"TEMPORAL_API_KEY": "secret", "TEMPORAL_TLS": "false"},
			want: want{addr: "127.0.0.1:7233", ns: "default", opts: hasCreds}},
		{name: "TEMPORAL_TLS=1 alone turns TLS on",
			env:  map[string]string{"TEMPORAL_TLS": "1"},
			want: want{addr: "127.0.0.1:7233", ns: "default", tls: true}},
		{name: "TEMPORAL_TLS_* CA, server name and host verification",
			env: map[string]string{"TEMPORAL_TLS_SERVER_CA_CERT_PATH": "$DIR/cert.pem", "TEMPORAL_TLS_SERVER_NAME": "frontend.internal",
				"TEMPORAL_TLS_DISABLE_HOST_VERIFICATION": "true"},
			want: want{addr: "127.0.0.1:7233", ns: "default", tls: true, opts: func(t *testing.T, o client.Options) {
				require.NotNil(t, o.ConnectionOptions.TLS.RootCAs)
				require.Equal(t, "frontend.internal", o.ConnectionOptions.TLS.ServerName)
				require.True(t, o.ConnectionOptions.TLS.InsecureSkipVerify)
			}}},
		{name: "TEMPORAL_TLS_CLIENT_CERT_PATH and _KEY_PATH give mTLS",
			env:  map[string]string{"TEMPORAL_TLS_CLIENT_CERT_PATH": "$DIR/cert.pem", "TEMPORAL_TLS_CLIENT_KEY_PATH": "$DIR/key.pem"},
			want: want{addr: "127.0.0.1:7233", ns: "default", tls: true, opts: hasClientCert}},
		{name: "the temporal CLI's older TEMPORAL_TLS_CERT, _KEY and _CA",
			env:  map[string]string{"TEMPORAL_TLS_CERT": "$DIR/cert.pem", "TEMPORAL_TLS_KEY": "$DIR/key.pem", "TEMPORAL_TLS_CA": "$DIR/cert.pem"},
			want: want{addr: "127.0.0.1:7233", ns: "default", tls: true, opts: hasClientCert}},
		{name: "--tls-ca wins over TEMPORAL_TLS_SERVER_CA_CERT_PATH",
			env:   map[string]string{"TEMPORAL_TLS_SERVER_CA_CERT_PATH": "$DIR/bad.pem"},
			flags: []string{"--tls-ca", "$DIR/cert.pem"},
			want:  want{addr: "127.0.0.1:7233", ns: "default", tls: true}},
		{name: "a TLS file of ours turns TLS on over TEMPORAL_TLS=false",
			env:  map[string]string{"TEMPORAL_TLS": "false", "CANARYFLOW_TLS_CA": "$DIR/cert.pem"},
			want: want{addr: "127.0.0.1:7233", ns: "default", tls: true}},
		{name: "CANARYFLOW_API_KEY_FILE wins over TEMPORAL_API_KEY (its empty file is what is refused)",
			env:  map[string]string{"TEMPORAL_API_KEY": "secret", "CANARYFLOW_API_KEY_FILE": "$DIR/empty"},
			want: want{addr: "127.0.0.1:7233", ns: "default", tls: true, optsErr: "(from CANARYFLOW_API_KEY_FILE) is empty"}},
		{name: "the default profile of the default file",
			profiles: true,
			want:     want{addr: "default.example:7233", ns: "from-default-profile"}},
		{name: "TEMPORAL_PROFILE picks a profile of TEMPORAL_CONFIG_FILE; TEMPORAL_NAMESPACE overrides it",
			profiles: true,
			env:      map[string]string{"TEMPORAL_CONFIG_FILE": "$DIR/temporal.toml", "TEMPORAL_PROFILE": "staging", "TEMPORAL_NAMESPACE": "rollouts"},
			want: want{addr: "staging.example:7233", ns: "rollouts", tls: true, opts: func(t *testing.T, o client.Options) {
				hasCreds(t, o)
				require.Equal(t, "staging.tmprl.cloud", o.ConnectionOptions.TLS.ServerName)
			}}},
		{name: "CANARYFLOW_TEMPORAL_ADDRESS wins over the profile, which keeps its namespace",
			profiles: true,
			env:      map[string]string{"TEMPORAL_PROFILE": "staging", "CANARYFLOW_TEMPORAL_ADDRESS": "ours.example:7233"},
			want:     want{addr: "ours.example:7233", ns: "from-staging-profile", tls: true, opts: hasCreds}},
		{name: "a profile's tls.disabled keeps its API key in plain text",
			profiles: true,
			env:      map[string]string{"TEMPORAL_PROFILE": "plain"},
			want:     want{addr: "plain.example:7233", ns: "default", opts: hasCreds}},
		{name: "a profile's gRPC metadata is sent",
			profiles: true,
			env:      map[string]string{"TEMPORAL_PROFILE": "meta"},
			want: want{addr: "meta.example:7233", ns: "default", opts: func(t *testing.T, o client.Options) {
				require.NotNil(t, o.HeadersProvider)
				h, err := o.HeadersProvider.GetHeaders(t.Context())
				require.NoError(t, err)
				require.Equal(t, "rollouts", h["x-team"])
			}}},

		{name: "a TEMPORAL_TLS that is no boolean",
			env:  map[string]string{"TEMPORAL_TLS": "yes", "TEMPORAL_TLS_DISABLE_HOST_VERIFICATION": "maybe"},
			want: want{err: "TEMPORAL_TLS=\"yes\": write true or false\nTEMPORAL_TLS_DISABLE_HOST_VERIFICATION=\"maybe\": write true or false"}},
		{name: "a TEMPORAL_PROFILE the file does not have",
			profiles: true,
			env:      map[string]string{"TEMPORAL_CONFIG_FILE": "$DIR/temporal.toml", "TEMPORAL_PROFILE": "prod"},
			want:     want{err: `TEMPORAL_PROFILE="prod": no such profile in $DIR/temporal.toml (its profiles: "badaddr", "data", "default", "meta", "plain", "staging")`}},
		{name: "a TEMPORAL_PROFILE and no file",
			env:  map[string]string{"TEMPORAL_CONFIG_FILE": "$DIR/missing.toml", "TEMPORAL_PROFILE": "prod"},
			want: want{err: `TEMPORAL_PROFILE="prod": no such profile in $DIR/missing.toml (it does not exist)`}},
		{name: "a TEMPORAL_CONFIG_FILE that is not TOML",
			env:  map[string]string{"TEMPORAL_CONFIG_FILE": "$DIR/bad.pem"},
			want: want{err: "TEMPORAL_CONFIG_FILE $DIR/bad.pem: failed parsing config"}},
		{name: "a TEMPORAL_ADDRESS without a port",
			env:  map[string]string{"TEMPORAL_ADDRESS": "temporal.example"},
			want: want{err: `Temporal address "temporal.example" (from TEMPORAL_ADDRESS) is not host:port`}},
		{name: "a profile's address without a port",
			profiles: true,
			env:      map[string]string{"TEMPORAL_PROFILE": "badaddr"},
			want:     want{err: `Temporal address "no-port.example" (from profile "badaddr" of $DIR/temporalio/temporal.toml) is not host:port`}},
		{name: "--tls-cert without its key",
			flags: []string{"--tls-cert", "$DIR/cert.pem"},
			want:  want{err: "the TLS client certificate (from --tls-cert) has no key: --tls-cert and --tls-key go together"}},
		{name: "TEMPORAL_TLS_CLIENT_KEY_PATH without its certificate",
			env:  map[string]string{"TEMPORAL_TLS_CLIENT_KEY_PATH": "$DIR/key.pem"},
			want: want{err: "the TLS client key (from TEMPORAL_TLS_CLIENT_KEY_PATH) has no certificate"}},
		{name: "a certificate both as a path and as data",
			profiles: true,
			env:      map[string]string{"TEMPORAL_PROFILE": "data", "TEMPORAL_TLS_CLIENT_CERT_PATH": "$DIR/cert.pem", "TEMPORAL_TLS_CLIENT_KEY_PATH": "$DIR/key.pem"},
			want:     want{err: `the TLS client certificate is given both as a file (TEMPORAL_TLS_CLIENT_CERT_PATH) and as data (profile "data" of $DIR/temporalio/temporal.toml): keep one`}},
		{name: "a TEMPORAL_TLS_SERVER_CA_CERT_PATH that holds no certificate",
			env:  map[string]string{"TEMPORAL_TLS_SERVER_CA_CERT_PATH": "$DIR/bad.pem"},
			want: want{addr: "127.0.0.1:7233", ns: "default", tls: true, optsErr: "TLS CA file $DIR/bad.pem (from TEMPORAL_TLS_SERVER_CA_CERT_PATH) holds no PEM certificate"}},
		{name: "a CANARYFLOW_TLS_CERT whose key does not match",
			env:  map[string]string{"CANARYFLOW_TLS_CERT": "$DIR/cert.pem", "TEMPORAL_TLS_CLIENT_KEY_PATH": "$DIR/bad.pem"},
			want: want{addr: "127.0.0.1:7233", ns: "default", tls: true, optsErr: "load the TLS client certificate $DIR/cert.pem (from CANARYFLOW_TLS_CERT) and key $DIR/bad.pem (from TEMPORAL_TLS_CLIENT_KEY_PATH)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			temporalconntest.Isolate(t)
			dir := t.TempDir()
			writePEMs(t, dir)
			// The default file is $XDG_CONFIG_HOME/temporalio/temporal.toml: point that at dir too.
			t.Setenv("XDG_CONFIG_HOME", dir)
			if tc.profiles {
				require.NoError(t, os.MkdirAll(filepath.Join(dir, "temporalio"), 0o700))
				for _, p := range []string{"temporal.toml", "temporalio/temporal.toml"} {
					require.NoError(t, os.WriteFile(filepath.Join(dir, p), []byte(profiles), 0o600))
				}
			}
			sub := func(s string) string { return strings.ReplaceAll(s, "$DIR", dir) }
			for k, v := range tc.env {
				t.Setenv(k, sub(v))
			}
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			o := FromEnv()
			o.BindFlags(fs)
			var args []string
			for _, a := range tc.flags {
				args = append(args, sub(a))
			}
			require.NoError(t, fs.Parse(args))

			conn, err := o.Resolve()
			if tc.want.err != "" {
				require.Error(t, err)
				for _, line := range strings.Split(sub(tc.want.err), "\n") {
					require.Contains(t, err.Error(), line)
				}
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want.addr, conn.Address)
			require.Equal(t, tc.want.ns, conn.Namespace)
			require.Equal(t, tc.want.tls, conn.TLS, "TLS")
			opts, err := conn.ClientOptions()
			if tc.want.optsErr != "" {
				require.ErrorContains(t, err, sub(tc.want.optsErr))
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want.addr, opts.HostPort)
			require.Equal(t, tc.want.ns, opts.Namespace)
			require.Equal(t, tc.want.tls, opts.ConnectionOptions.TLS != nil && !opts.ConnectionOptions.TLSDisabled, "TLS in the client options")
			if tc.want.opts != nil {
				tc.want.opts(t, opts)
			}
		})
	}
}

func hasClientCert(t *testing.T, o client.Options) {
	require.Len(t, o.ConnectionOptions.TLS.Certificates, 1, "a client certificate for mTLS")
}
