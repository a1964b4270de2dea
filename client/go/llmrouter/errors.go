package llmrouter

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	llmrouterv1 "llm-router/client/go/llmrouterv1"
)

// Sentinels for errors.Is on a *RouteError.
var (
	// ErrInvalidRequest: INVALID_ARGUMENT, the request was malformed; no model was called.
	ErrInvalidRequest = errors.New("llmrouter: invalid request")
	// ErrAllModelsFailed: UNAVAILABLE, every model of the chain was rejected.
	ErrAllModelsFailed = errors.New("llmrouter: all models failed")
	// ErrDeadlineExceeded: DEADLINE_EXCEEDED, the call's deadline ran out.
	ErrDeadlineExceeded = errors.New("llmrouter: deadline exceeded")
)

// RouteError is a failed Route call: the gRPC status and, when the server sent
// one, the RouteFailure detail with every attempt (from grpc-status-details-bin).
type RouteError struct {
	// Code is the gRPC status code.
	Code codes.Code
	// Message is the status message; for a failed chain it lists the attempts.
	Message string
	// Failure is the typed detail of UNAVAILABLE and DEADLINE_EXCEEDED replies;
	// nil when the server sent none (e.g. the deadline ran out on the client's
	// side before the server's reply arrived).
	Failure *llmrouterv1.RouteFailure

	status *status.Status
}

// Attempts are the attempts of the failed chain, in order (nil without a Failure).
func (e *RouteError) Attempts() []*llmrouterv1.Attempt { return e.Failure.GetAttempts() }

func (e *RouteError) Error() string {
	return fmt.Sprintf("llmrouter: %s: %s", e.Code, e.Message)
}

// GRPCStatus lets status.FromError and status.Code see the original status.
func (e *RouteError) GRPCStatus() *status.Status { return e.status }

// Is matches ErrInvalidRequest, ErrAllModelsFailed and ErrDeadlineExceeded by code.
func (e *RouteError) Is(target error) bool {
	switch target {
	case ErrInvalidRequest:
		return e.Code == codes.InvalidArgument
	case ErrAllModelsFailed:
		return e.Code == codes.Unavailable && e.Failure != nil
	case ErrDeadlineExceeded:
		return e.Code == codes.DeadlineExceeded
	}
	return false
}

// routeError turns a gRPC error into a *RouteError, decoding the RouteFailure detail.
func routeError(err error) error {
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
	return e
}
