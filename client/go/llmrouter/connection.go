package llmrouter

// How to reach the server: target(s), bearer token, TLS. The same settings, with the same
// names, as the Python client and the llm-router command (see docs/clients.md):
//
//	LLM_ROUTER_TARGET        host:port; several comma-separated; or dns:///name:port
//	LLM_ROUTER_TOKEN         bearer token (LLM_ROUTER_TOKEN_FILE: a file holding it)
//	LLM_ROUTER_TLS=1         TLS trusting the system's CAs
//	LLM_ROUTER_CA            TLS trusting this PEM CA file
//	LLM_ROUTER_CERT, _KEY    client certificate and key (mTLS)
//	LLM_ROUTER_SERVER_NAME   name expected in the server certificate

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// DefaultTarget is the server address when none is given.
const DefaultTarget = "127.0.0.1:50051"

// roundRobin spreads calls over every address the target resolves to (several targets,
// or a DNS name with several addresses, such as a Kubernetes headless Service).
const roundRobin = `{"loadBalancingConfig": [{"round_robin": {}}]}`

// TLS configures a TLS connection. The zero value trusts the system's CAs.
type TLS struct {
	// CA is a PEM file of the CA(s) that signed the server certificate; empty: the system's.
	CA string
	// Cert and Key are a PEM client certificate chain and its key, for servers that
	// require one (mTLS: the server's tls.client_ca_file).
	Cert, Key string
	// ServerName is the name the server certificate must carry, when it is not the
	// target's host.
	ServerName string
}

func (t TLS) credentials() (credentials.TransportCredentials, error) {
	config := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, fmt.Errorf("llmrouter: cannot read the CA file: %w", err)
		}
		config.RootCAs = x509.NewCertPool()
		if !config.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("llmrouter: no PEM certificate in the CA file %s", t.CA)
		}
	}
	if (t.Cert == "") != (t.Key == "") {
		return nil, fmt.Errorf("llmrouter: a client certificate needs both Cert and Key (mTLS)")
	}
	if t.Cert != "" {
		pair, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("llmrouter: client certificate: %w", err)
		}
		config.Certificates = []tls.Certificate{pair}
	}
	return credentials.NewTLS(config), nil
}

// WithToken sends "authorization: Bearer <token>" with every call (the server's
// auth.tokens). It is sent with or without TLS; without TLS keep to a private network.
func WithToken(token string) Option {
	return func(o *options) { o.token = token }
}

// WithTLS connects over TLS (mTLS when t has a client certificate).
func WithTLS(t TLS) Option {
	return func(o *options) { o.tls = &t }
}

// EnvTarget is $LLM_ROUTER_TARGET, else DefaultTarget.
func EnvTarget() string {
	if t := os.Getenv("LLM_ROUTER_TARGET"); t != "" {
		return t
	}
	return DefaultTarget
}

// EnvOptions are the token and TLS options that LLM_ROUTER_TOKEN (or LLM_ROUTER_TOKEN_FILE),
// LLM_ROUTER_TLS, LLM_ROUTER_CA, LLM_ROUTER_CERT, LLM_ROUTER_KEY and
// LLM_ROUTER_SERVER_NAME describe; none when they are unset. Options given after them win.
func EnvOptions() ([]Option, error) {
	var opts []Option
	token := os.Getenv("LLM_ROUTER_TOKEN")
	if file := os.Getenv("LLM_ROUTER_TOKEN_FILE"); token == "" && file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("llmrouter: cannot read the token file: %w", err)
		}
		token = strings.TrimSpace(string(data))
	}
	if token != "" {
		opts = append(opts, WithToken(token))
	}
	t := TLS{
		CA:         os.Getenv("LLM_ROUTER_CA"),
		Cert:       os.Getenv("LLM_ROUTER_CERT"),
		Key:        os.Getenv("LLM_ROUTER_KEY"),
		ServerName: os.Getenv("LLM_ROUTER_SERVER_NAME"),
	}
	switch strings.ToLower(strings.TrimSpace(os.Getenv("LLM_ROUTER_TLS"))) {
	case "1", "true", "yes", "on":
		opts = append(opts, WithTLS(t))
	default:
		if t != (TLS{}) {
			opts = append(opts, WithTLS(t))
		}
	}
	return opts, nil
}

// DialEnv is Dial(EnvTarget(), EnvOptions()..., opts...).
func DialEnv(opts ...Option) (*Client, error) {
	env, err := EnvOptions()
	if err != nil {
		return nil, err
	}
	return Dial(EnvTarget(), append(env, opts...)...)
}

// bearer is the token as per-call credentials; it does not insist on TLS, because the
// server accepts tokens on a private network without it.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }

// connectOptions are the dial options for o's token and TLS settings and for the target:
// a comma-separated list becomes a resolver with every address, dialled round-robin.
func connectOptions(target string, o *options) (string, []grpc.DialOption, error) {
	dial := []grpc.DialOption{grpc.WithDefaultServiceConfig(roundRobin)}
	if o.tls != nil {
		creds, err := o.tls.credentials()
		if err != nil {
			return "", nil, err
		}
		dial = append(dial, grpc.WithTransportCredentials(creds))
	}
	if o.token != "" {
		dial = append(dial, grpc.WithPerRPCCredentials(bearer(o.token)))
	}
	if !strings.Contains(target, ",") {
		return target, dial, nil
	}
	var addresses []resolver.Address
	for _, entry := range strings.Split(target, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(entry); err != nil || strings.Contains(entry, "/") {
			return "", nil, fmt.Errorf("llmrouter: target %q in a list is not host:port", entry)
		}
		addresses = append(addresses, resolver.Address{Addr: entry})
	}
	r := manual.NewBuilderWithScheme("llmrouter-list")
	r.InitialState(resolver.State{Addresses: addresses})
	// The first entry is the authority (and the TLS server name unless ServerName says).
	return r.Scheme() + ":///" + addresses[0].Addr, append(dial, grpc.WithResolvers(r)), nil
}
