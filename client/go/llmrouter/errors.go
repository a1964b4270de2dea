package llmrouter

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	llmrouterv1 "github.com/llm-router/llm-router/client/go/llmrouterv1"
)

// Sentinels for errors.Is on a *RouteError.
var (
	// ErrInvalidRequest: INVALID_ARGUMENT or RESOURCE_EXHAUSTED, the request was
	// malformed or too large; no model was called.
	ErrInvalidRequest = errors.New("llmrouter: invalid request")
	// ErrAllModelsFailed: UNAVAILABLE with a RouteFailure, every model of the chain was rejected.
	ErrAllModelsFailed = errors.New("llmrouter: all models failed")
	// ErrDeadlineExceeded: DEADLINE_EXCEEDED, the call's deadline ran out.
	ErrDeadlineExceeded = errors.New("llmrouter: deadline exceeded")
	// ErrRefused: PERMISSION_DENIED with a RouteFailure, a provider blocked the answer
	// for safety and the chain's refusal_policy is "stop"; Attempts() ends with the
	// SAFETY_REFUSAL attempt.
	ErrRefused = errors.New("llmrouter: refused by a provider")
	// ErrUnauthenticated: UNAUTHENTICATED, the server requires a bearer token
	// (auth.tokens) and got none or a wrong one.
	ErrUnauthenticated = errors.New("llmrouter: unauthenticated")
	// ErrUnreachable: UNAVAILABLE without a RouteFailure, no server answered: it is down
	// or elsewhere, or the connection's security does not match the server's (see Hint).
	ErrUnreachable = errors.New("llmrouter: server unreachable")
)

// RouteError is a failed call: the gRPC status and, when the server sent one, the
// RouteFailure detail with every attempt (from grpc-status-details-bin).
type RouteError struct {
	// Code is the gRPC status code.
	Code codes.Code
	// Message is the status message; for a failed chain it lists the attempts.
	Message string
	// Failure is the typed detail of UNAVAILABLE, DEADLINE_EXCEEDED and
	// PERMISSION_DENIED replies; nil when the server sent none (e.g. the deadline ran
	// out on the client's side before the server's reply arrived).
	Failure *llmrouterv1.RouteFailure
	// Hint says what to change when the client can tell (TLS, token, certificate), else "".
	Hint string

	status *status.Status
}

// Attempts are the attempts of the failed chain, in order (nil without a Failure).
func (e *RouteError) Attempts() []*llmrouterv1.Attempt { return e.Failure.GetAttempts() }

func (e *RouteError) Error() string {
	if e.Hint != "" {
		return fmt.Sprintf("llmrouter: %s: %s (hint: %s)", e.Code, e.Message, e.Hint)
	}
	return fmt.Sprintf("llmrouter: %s: %s", e.Code, e.Message)
}

// GRPCStatus lets status.FromError and status.Code see the original status.
func (e *RouteError) GRPCStatus() *status.Status { return e.status }

// Is matches the sentinels above by code (and by whether the server sent a Failure).
func (e *RouteError) Is(target error) bool {
	switch target {
	case ErrInvalidRequest:
		return e.Code == codes.InvalidArgument || e.Code == codes.ResourceExhausted
	case ErrAllModelsFailed:
		return e.Code == codes.Unavailable && e.Failure != nil
	case ErrDeadlineExceeded:
		return e.Code == codes.DeadlineExceeded
	case ErrRefused:
		return e.Code == codes.PermissionDenied && e.Failure != nil
	case ErrUnauthenticated:
		return e.Code == codes.Unauthenticated
	case ErrUnreachable:
		return e.Code == codes.Unavailable && e.Failure == nil
	}
	return false
}

// routeError turns a gRPC error into a *RouteError, decoding the RouteFailure detail.
func (c *Client) routeError(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	e := &RouteError{Code: st.Code(), Message: st.Message(), status: st}
	for _, detail := range st.Details() {
		if failure, ok := detail.(*llmrouterv1.RouteFailure); ok {
			e.Failure = failure
		}
	}
	switch {
	case e.Code == codes.Unauthenticated && c.token:
		e.Hint = "the server did not accept this token"
	case e.Code == codes.Unauthenticated:
		e.Hint = "the server requires a bearer token: give one (WithToken, LLM_ROUTER_TOKEN)"
	case e.Code == codes.Unavailable && e.Failure == nil:
		e.Hint = c.connectionHint(e.Message)
	}
	return e
}

// connectionHint reads the transport error text of an UNAVAILABLE call.
func (c *Client) connectionHint(message string) string {
	text := strings.ToLower(message)
	has := func(parts ...string) bool {
		for _, p := range parts {
			if strings.Contains(text, p) {
				return true
			}
		}
		return false
	}
	switch {
	case has("connection refused"):
		return "nothing listens at that address: is the server running, is the target right?"
	case has("first record does not look like a tls handshake", "tls: oversized record"):
		return "the server speaks plaintext: connect without WithTLS"
	case has("certificate signed by unknown authority"):
		return "the server certificate is not signed by a CA this client trusts: give the CA that signed it (TLS{CA: ...}, LLM_ROUTER_CA)"
	case has("certificate is valid for", "certificate is not valid for"):
		return "the server certificate does not carry the target's host name: connect by a name it carries, or set TLS{ServerName: ...} (LLM_ROUTER_SERVER_NAME)"
	}
	// The server hung up in the handshake: a TLS server meeting plain text, or (TLS 1.3)
	// a server that wants a client certificate and got none or one it does not accept.
	if !has("error reading server preface", "broken pipe", "connection reset", "certificate required", "bad certificate") {
		return ""
	}
	switch {
	case !c.secure:
		return "the server closed the connection at once: it probably serves TLS (WithTLS, LLM_ROUTER_CA or LLM_ROUTER_TLS=1)"
	case !c.clientCert:
		return "the server closed the connection in the TLS handshake: it probably requires a client certificate (mTLS): give one (TLS{Cert: ..., Key: ...}, LLM_ROUTER_CERT/LLM_ROUTER_KEY)"
	default:
		return "the server closed the connection in the TLS handshake: it probably does not accept this client certificate (not signed by its tls.client_ca_file)"
	}
}
