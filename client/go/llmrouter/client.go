// Package llmrouter is a thin typed client for the llm-router gRPC service.
//
//	client, err := llmrouter.Dial("router.internal:50051",
//		llmrouter.WithToken(token), llmrouter.WithTLS(llmrouter.TLS{CA: "ca.pem"}))
//	// or llmrouter.DialEnv(): LLM_ROUTER_TARGET, LLM_ROUTER_TOKEN, LLM_ROUTER_CA, ...
//	if err != nil { ... }
//	defer client.Close()
//	resp, err := client.Route(ctx, llmrouter.Request{
//		Messages: []llmrouter.Message{{Role: "user", Content: "nginx is down. What now?"}},
//		Schema:   map[string]any{"type": "object", "required": []string{"action"}},
//		Context:  "supervisor.reconcile",
//	})
//	var failed *llmrouter.RouteError
//	if errors.As(err, &failed) {
//		for _, a := range failed.Attempts() { ... }
//	}
//
// The generated code is the package llmrouterv1 beside this one; Stub gives direct
// access to it (the token and TLS options apply to its calls too).
package llmrouter

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/encoding/protojson"

	llmrouterv1 "github.com/llm-router/llm-router/client/go/llmrouterv1"
)

// DefaultTimeout is the deadline a call gets when its context has none: enough for
// the server's default chain (8 s + 30 s + 30 s) plus margin.
const DefaultTimeout = 75 * time.Second

// DefaultKeepalive pings an idle connection while calls are open, so that a peer
// that vanished (a laptop leaving the tailnet) fails the call instead of hanging it.
// The server accepts pings every 5 s or slower (KEEPALIVE_OPTIONS in app.py).
var DefaultKeepalive = keepalive.ClientParameters{
	Time:                30 * time.Second,
	Timeout:             10 * time.Second,
	PermitWithoutStream: false,
}

// Client calls one llm-router server. It is safe for concurrent use.
type Client struct {
	conn           *grpc.ClientConn
	stub           llmrouterv1.RouterClient
	defaultTimeout time.Duration
	// How the connection was made, for the hints of errors.
	secure, clientCert, token bool
}

// Option changes how Dial builds a Client.
type Option func(*options)

type options struct {
	defaultTimeout time.Duration
	dialOptions    []grpc.DialOption
	token          string
	tls            *TLS
}

// WithDefaultTimeout sets the deadline of calls whose context has none (default
// DefaultTimeout). Zero means no deadline.
func WithDefaultTimeout(d time.Duration) Option {
	return func(o *options) { o.defaultTimeout = d }
}

// WithDialOptions adds gRPC dial options; they come after the defaults (the transport
// of WithTLS or plain text, DefaultKeepalive, round-robin balancing), so they can
// replace them.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dialOptions = append(o.dialOptions, opts...) }
}

// Dial returns a Client for target: "host:port", several of them comma-separated, or a
// gRPC URI such as "dns:///router.internal:50051". Calls are spread round-robin over
// every address (several replicas; a Kubernetes headless Service). It does not wait for
// the connection: the first call does.
//
// Without options the connection is plain text and sends no token, which suits a server
// without auth.tokens and [tls] on loopback or a private network such as Tailscale.
// WithToken and WithTLS match a secured server; DialEnv reads them from LLM_ROUTER_*.
func Dial(target string, opts ...Option) (*Client, error) {
	o := options{defaultTimeout: DefaultTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	dialTarget, connect, err := connectOptions(target, &o)
	if err != nil {
		return nil, err
	}
	dialOptions := []grpc.DialOption{grpc.WithKeepaliveParams(DefaultKeepalive)}
	if o.tls == nil {
		dialOptions = append(dialOptions, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	dialOptions = append(append(dialOptions, connect...), o.dialOptions...)
	conn, err := grpc.NewClient(dialTarget, dialOptions...)
	if err != nil {
		return nil, fmt.Errorf("llmrouter: dial %s: %w", target, err)
	}
	return &Client{
		conn: conn, stub: llmrouterv1.NewRouterClient(conn), defaultTimeout: o.defaultTimeout,
		secure: o.tls != nil, clientCert: o.tls != nil && o.tls.Cert != "", token: o.token != "",
	}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Stub is the generated client on the same connection, for calls the wrapper
// does not cover.
func (c *Client) Stub() llmrouterv1.RouterClient { return c.stub }

// Message is one turn of the conversation.
type Message struct {
	Role    string // "system", "user" or "assistant"
	Content string
}

// Request is one Route call.
type Request struct {
	// Messages is the conversation, oldest first; at least one.
	Messages []Message
	// Schema is the JSON Schema the answer must validate against: nil for a
	// free-text answer, a string or []byte/json.RawMessage holding JSON, or any Go
	// value that encoding/json turns into the schema (see SchemaJSON).
	Schema any
	// Context is a free label for logs and metrics, e.g. "supervisor.reconcile".
	Context string
	// Chain names a chain of the server's configuration; empty means its default.
	Chain string
}

// Route sends the request through the server's fallback chain. On failure the
// error is a *RouteError (errors.Is matches ErrInvalidRequest, ErrAllModelsFailed,
// ErrDeadlineExceeded, ErrRefused, ErrUnauthenticated, ErrUnreachable); a schema that
// cannot be encoded fails before anything is sent.
func (c *Client) Route(ctx context.Context, req Request, opts ...grpc.CallOption) (*llmrouterv1.RouteResponse, error) {
	schema, err := SchemaJSON(req.Schema)
	if err != nil {
		return nil, err
	}
	msg := &llmrouterv1.RouteRequest{Schema: schema, Context: req.Context, Chain: req.Chain}
	for _, m := range req.Messages {
		msg.Messages = append(msg.Messages, &llmrouterv1.Message{Role: m.Role, Content: m.Content})
	}
	ctx, cancel := c.withDefaultDeadline(ctx)
	defer cancel()
	resp, err := c.stub.Route(ctx, msg, opts...)
	if err != nil {
		return nil, c.routeError(err)
	}
	return resp, nil
}

// WatchMetrics opens the metrics stream: a snapshot of the per-model counters,
// then one event per finished Route call. A dashboard sets MaxEventsPerMessage
// (and BatchIntervalMs, say 250) on req to get several events per message
// (GetEvents), a few messages a second from a busy replica instead of one per
// call. It runs until ctx ends; the default deadline does not apply. Errors of
// Recv other than io.EOF are *RouteError, as Route's are.
func (c *Client) WatchMetrics(ctx context.Context, req *llmrouterv1.WatchMetricsRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[llmrouterv1.WatchMetricsResponse], error) {
	if req == nil {
		req = &llmrouterv1.WatchMetricsRequest{}
	}
	stream, err := c.stub.WatchMetrics(ctx, req, opts...)
	if err != nil {
		return nil, c.routeError(err)
	}
	return watchStream{stream, c}, nil
}

type watchStream struct {
	grpc.ServerStreamingClient[llmrouterv1.WatchMetricsResponse]
	client *Client
}

func (w watchStream) Recv() (*llmrouterv1.WatchMetricsResponse, error) {
	m, err := w.ServerStreamingClient.Recv()
	if err != nil && err != io.EOF {
		return nil, w.client.routeError(err)
	}
	return m, err
}

func (c *Client) withDefaultDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok || c.defaultTimeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.defaultTimeout)
}

// SchemaJSON turns a schema given as a Go value into the JSON text the request
// carries: nil gives "" (free text); a string, []byte or json.RawMessage must
// already be JSON and is passed as is; anything else is encoded with
// encoding/json (a map, a struct with json tags, ...).
func SchemaJSON(schema any) (string, error) {
	var text []byte
	switch s := schema.(type) {
	case nil:
		return "", nil
	case string:
		text = []byte(s)
	case []byte:
		text = s
	case json.RawMessage:
		text = s
	default:
		encoded, err := json.Marshal(s)
		if err != nil {
			return "", fmt.Errorf("llmrouter: schema: %w", err)
		}
		text = encoded
	}
	if !json.Valid(text) {
		return "", fmt.Errorf("llmrouter: schema is not valid JSON: %.80q", text)
	}
	return string(text), nil
}

// DecodeContent decodes the answer (the parsed JSON when the request had a
// schema, else the text as a JSON string) into v, as encoding/json would.
func DecodeContent(resp *llmrouterv1.RouteResponse, v any) error {
	raw, err := protojson.Marshal(resp.GetContent())
	if err != nil {
		return fmt.Errorf("llmrouter: content: %w", err)
	}
	return json.Unmarshal(raw, v)
}
