package llmrouter_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/llm-router/llm-router/client/go/llmrouter"
	llmrouterv1 "github.com/llm-router/llm-router/client/go/llmrouterv1"
)

func dial(t *testing.T, opts ...llmrouter.Option) *llmrouter.Client {
	t.Helper()
	return dialTo(t, target, opts...)
}

func dialTo(t *testing.T, target string, opts ...llmrouter.Option) *llmrouter.Client {
	t.Helper()
	client, err := llmrouter.Dial(target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client
}

func user(text string) []llmrouter.Message {
	return []llmrouter.Message{{Role: "user", Content: text}}
}

func routeCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

type action struct {
	Action string `json:"action"`
}

func TestRouteAnswersWithTheFirstModelAndDecodesTheSchemaAnswer(t *testing.T) {
	client := dial(t)
	schemas := map[string]any{
		"go value": map[string]any{
			"type":       "object",
			"required":   []string{"action"},
			"properties": map[string]any{"action": map[string]any{"enum": []string{"restart", "escalate"}}},
		},
		"string":          `{"type": "object", "required": ["action"]}`,
		"json.RawMessage": json.RawMessage(`{"type": "object"}`),
	}
	for name, schema := range schemas {
		t.Run(name, func(t *testing.T) {
			resp, err := client.Route(routeCtx(t, 30*time.Second), llmrouter.Request{
				Messages: user("nginx is down. What now?"),
				Schema:   schema,
				Context:  "go.test.success",
			})
			if err != nil {
				t.Fatal(err)
			}
			var got action
			if err := llmrouter.DecodeContent(resp, &got); err != nil {
				t.Fatal(err)
			}
			if got.Action != "restart" {
				t.Errorf("content = %+v, want action restart", got)
			}
			if resp.GetModelUsed() != ollamaModel || len(resp.GetAttempts()) != 1 {
				t.Errorf("model_used = %q, attempts = %v", resp.GetModelUsed(), resp.GetAttempts())
			}
			if resp.GetAttempts()[0].GetOutcome() != llmrouterv1.AttemptOutcome_ATTEMPT_OUTCOME_SUCCESS {
				t.Errorf("attempt = %v", resp.GetAttempts()[0])
			}
		})
	}
}

func TestRouteWithoutSchemaReturnsTheTextAsAString(t *testing.T) {
	resp, err := dial(t).Route(routeCtx(t, 30*time.Second), llmrouter.Request{Messages: user("hello")})
	if err != nil {
		t.Fatal(err)
	}
	var text string
	if err := llmrouter.DecodeContent(resp, &text); err != nil {
		t.Fatal(err)
	}
	if text != fakeAnswer || resp.GetRawText() != fakeAnswer {
		t.Errorf("content %q, raw_text %q, want %q", text, resp.GetRawText(), fakeAnswer)
	}
}

func TestRouteFallsBackToTheNextModelWhenTheFirstFails(t *testing.T) {
	resp, err := dial(t).Route(routeCtx(t, 30*time.Second), llmrouter.Request{
		Messages: user("[fallback] nginx is down. What now?"),
		Schema:   `{"type": "object", "required": ["action"]}`,
	})
	if err != nil {
		t.Fatal(err)
	}
	attempts := resp.GetAttempts()
	if resp.GetModelUsed() != haikuModel || len(attempts) != 2 {
		t.Fatalf("model_used = %q, attempts = %v", resp.GetModelUsed(), attempts)
	}
	first := attempts[0]
	if first.GetModel() != ollamaModel ||
		first.GetOutcome() != llmrouterv1.AttemptOutcome_ATTEMPT_OUTCOME_REJECTED ||
		first.GetReasonCategory() != llmrouterv1.ReasonCategory_REASON_CATEGORY_PROVIDER_ERROR ||
		!strings.Contains(first.GetReason(), "HTTP 500") {
		t.Errorf("first attempt = %v", first)
	}
	if attempts[1].GetOutcome() != llmrouterv1.AttemptOutcome_ATTEMPT_OUTCOME_SUCCESS {
		t.Errorf("second attempt = %v", attempts[1])
	}
}

// Money: the local model of the test server has no price, so its attempt's cost is
// unknown (nil) and so is the call's total; Claude Haiku's comes from litellm's price
// table ($1 / $5 per million tokens) and the fake's token counts (11 in, 7 out).
func TestAttemptsCarryTheirCostAndUnknownIsNil(t *testing.T) {
	resp, err := dial(t).Route(routeCtx(t, 30*time.Second), llmrouter.Request{Messages: user("[fallback] hello")})
	if err != nil {
		t.Fatal(err)
	}
	attempts := resp.GetAttempts()
	if len(attempts) != 2 || attempts[0].CostUsd != nil || attempts[1].CostUsd == nil {
		t.Fatalf("attempts = %v", attempts)
	}
	if got := attempts[1].GetCostUsd(); got < 4.59e-05 || got > 4.61e-05 {
		t.Errorf("Haiku's attempt cost $%g, want $0.000046", got)
	}
	if resp.CostUsd != nil || attempts[1].GetRepair() != 0 {
		t.Errorf("cost_usd = %v (want nil: one attempt's cost is unknown), repair = %d", resp.CostUsd, attempts[1].GetRepair())
	}
	if resp.GetCostAvoidedUsd() != 0 || resp.CostAvoidedUsd == nil {
		t.Errorf("cost_avoided_usd = %v, want 0 (a priced model answered)", resp.CostAvoidedUsd)
	}
}

func TestAllFailedIsARouteErrorWithEveryAttempt(t *testing.T) {
	_, err := dial(t).Route(routeCtx(t, 30*time.Second), llmrouter.Request{Messages: user("[fail] hello")})
	var failed *llmrouter.RouteError
	if !errors.As(err, &failed) {
		t.Fatalf("err = %v (%T), want *RouteError", err, err)
	}
	if !errors.Is(err, llmrouter.ErrAllModelsFailed) || status.Code(err) != codes.Unavailable {
		t.Errorf("err = %v, code %s", err, status.Code(err))
	}
	if failed.Failure.GetChain() != "default" || failed.Failure.GetLatencyMs() <= 0 {
		t.Errorf("failure = %v", failed.Failure)
	}
	var models []string
	for _, a := range failed.Attempts() {
		models = append(models, a.GetModel())
		if a.GetOutcome() != llmrouterv1.AttemptOutcome_ATTEMPT_OUTCOME_REJECTED ||
			a.GetReasonCategory() != llmrouterv1.ReasonCategory_REASON_CATEGORY_PROVIDER_ERROR {
			t.Errorf("attempt = %v", a)
		}
	}
	if fmt.Sprint(models) != fmt.Sprint([]string{ollamaModel, haikuModel}) {
		t.Errorf("attempted %v", models)
	}
	if !strings.Contains(failed.Message, "all 2 models") {
		t.Errorf("message = %q", failed.Message)
	}
}

func TestBadRequestsAreInvalidArgumentAndCallNoModel(t *testing.T) {
	cases := map[string]llmrouter.Request{
		"no messages":              {},
		"unknown role":             {Messages: []llmrouter.Message{{Role: "robot", Content: "hi"}}},
		"schema type not a string": {Messages: user("hi"), Schema: `{"type": 12}`},
		"unknown chain":            {Messages: user("hi"), Chain: "no-such-chain"},
		"empty message":            {Messages: user("")},
		"schema minItems negative": {Messages: user("hi"), Schema: map[string]any{"type": "array", "minItems": -1}},
	}
	client := dial(t)
	for name, req := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := client.Route(routeCtx(t, 30*time.Second), req)
			var failed *llmrouter.RouteError
			if !errors.As(err, &failed) || !errors.Is(err, llmrouter.ErrInvalidRequest) {
				t.Fatalf("err = %v, want INVALID_ARGUMENT", err)
			}
			if failed.Message == "" || failed.Failure != nil {
				t.Errorf("message %q, failure %v", failed.Message, failed.Failure)
			}
		})
	}
}

func TestASchemaThatIsNotJSONFailsBeforeSending(t *testing.T) {
	for _, schema := range []any{`{"type": `, []byte("nope"), func() {}} {
		_, err := dial(t).Route(context.Background(), llmrouter.Request{Messages: user("hi"), Schema: schema})
		if err == nil || !strings.Contains(err.Error(), "schema") {
			t.Errorf("schema %T: err = %v", schema, err)
		}
		var failed *llmrouter.RouteError
		if errors.As(err, &failed) {
			t.Errorf("schema %T: got a server error %v, want a local one", schema, err)
		}
	}
}

func TestSchemaJSON(t *testing.T) {
	type prop struct {
		Type string `json:"type"`
	}
	cases := []struct {
		in   any
		want string
	}{
		{nil, ""},
		{`{"type":"object"}`, `{"type":"object"}`},
		{struct {
			Type       string          `json:"type"`
			Properties map[string]prop `json:"properties"`
		}{"object", map[string]prop{"n": {"integer"}}}, `{"type":"object","properties":{"n":{"type":"integer"}}}`},
	}
	for _, c := range cases {
		got, err := llmrouter.SchemaJSON(c.in)
		if err != nil || got != c.want {
			t.Errorf("SchemaJSON(%#v) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestDeadlineExceededCarriesTheAttemptsMadeSoFar(t *testing.T) {
	_, err := dial(t).Route(routeCtx(t, 2*time.Second), llmrouter.Request{Messages: user("[hang] hello")})
	var failed *llmrouter.RouteError
	if !errors.As(err, &failed) || !errors.Is(err, llmrouter.ErrDeadlineExceeded) {
		t.Fatalf("err = %v, want DEADLINE_EXCEEDED", err)
	}
	attempts := failed.Attempts()
	if len(attempts) == 0 {
		t.Fatalf("no attempts in %v", err)
	}
	if attempts[0].GetModel() != ollamaModel ||
		attempts[0].GetReasonCategory() != llmrouterv1.ReasonCategory_REASON_CATEGORY_TIMEOUT {
		t.Errorf("first attempt = %v", attempts[0])
	}
}

func TestTheDefaultDeadlineAppliesWhenTheContextHasNone(t *testing.T) {
	client := dial(t, llmrouter.WithDefaultTimeout(2*time.Second))
	started := time.Now()
	_, err := client.Route(context.Background(), llmrouter.Request{Messages: user("[hang] hello")})
	if !errors.Is(err, llmrouter.ErrDeadlineExceeded) {
		t.Fatalf("err = %v, want DEADLINE_EXCEEDED", err)
	}
	if elapsed := time.Since(started); elapsed > 20*time.Second {
		t.Errorf("took %s; the 2 s default deadline did not apply", elapsed)
	}
}

func TestWatchMetricsStreamsASnapshotThenOneEventPerCall(t *testing.T) {
	client := dial(t)
	ctx := routeCtx(t, 60*time.Second)
	stream, err := client.WatchMetrics(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if first.GetSnapshot() == nil || first.GetSnapshot().GetTime() == nil {
		t.Fatalf("first message = %v, want a snapshot", first)
	}
	label := fmt.Sprintf("go.test.watch.%d", time.Now().UnixNano())
	want := map[string]llmrouterv1.RouteStatus{
		label + ".ok":     llmrouterv1.RouteStatus_ROUTE_STATUS_OK,
		label + ".failed": llmrouterv1.RouteStatus_ROUTE_STATUS_ALL_FAILED,
	}
	if _, err := client.Route(ctx, llmrouter.Request{Messages: user("hi"), Context: label + ".ok"}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Route(ctx, llmrouter.Request{Messages: user("[fail] hi"), Context: label + ".failed"}); !errors.Is(err, llmrouter.ErrAllModelsFailed) {
		t.Fatalf("err = %v", err)
	}
	for len(want) > 0 {
		msg, err := stream.Recv()
		if err != nil {
			t.Fatalf("stream: %v (still waiting for %v)", err, want)
		}
		event := msg.GetEvent()
		status, mine := want[event.GetContext()]
		if event == nil || !mine {
			continue // a snapshot, or another test's call
		}
		if event.GetStatus() != status || len(event.GetAttempts()) == 0 || event.GetTime() == nil {
			t.Errorf("event = %v, want status %s", event, status)
		}
		delete(want, event.GetContext())
	}
}

// A dashboard asks for events in batches: several events come in one message
// (EventBatch), in the order they happened, a message at most every 300 ms.
func TestWatchMetricsSendsEventsInBatchesWhenAsked(t *testing.T) {
	client := dial(t)
	ctx := routeCtx(t, 60*time.Second)
	label := fmt.Sprintf("go.test.batch.%d", time.Now().UnixNano())
	stream, err := client.WatchMetrics(ctx, &llmrouterv1.WatchMetricsRequest{
		MaxEventsPerMessage: 100,
		BatchIntervalMs:     300,
		Contexts:            []string{label},
	})
	if err != nil {
		t.Fatal(err)
	}
	if first, err := stream.Recv(); err != nil || first.GetSnapshot() == nil {
		t.Fatalf("first message = %v (%v), want a snapshot", first, err)
	}
	const calls = 6
	for i := 0; i < calls; i++ {
		if _, err := client.Route(ctx, llmrouter.Request{Messages: user("hi"), Context: label}); err != nil {
			t.Fatal(err)
		}
	}
	var seen []*llmrouterv1.RouteEvent
	messages := 0
	for len(seen) < calls {
		msg, err := stream.Recv()
		if err != nil {
			t.Fatalf("stream: %v (after %d events)", err, len(seen))
		}
		if msg.GetEvent() != nil {
			t.Fatalf("an event on its own (%v): batches were asked for", msg)
		}
		if batch := msg.GetEvents(); batch != nil {
			seen = append(seen, batch.GetEvents()...)
			messages++
		}
	}
	if len(seen) != calls || messages >= calls {
		t.Errorf("%d events in %d messages, want %d in fewer messages", len(seen), messages, calls)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i].GetTime().AsTime().Before(seen[i-1].GetTime().AsTime()) {
			t.Errorf("event %d came before event %d", i, i-1)
		}
	}
}

func TestTheExampleProgramPrintsTheAnswer(t *testing.T) {
	out, err := exec.Command("go", "run", "../example", "-target", target, "nginx is down. What now?").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if want := ollamaModel + " answered: action=restart"; !strings.Contains(string(out), want) {
		t.Errorf("output %q, want %q", out, want)
	}
	out, err = exec.Command("go", "run", "../example", "-target", target, "[fail] nginx is down.").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Unavailable") || !strings.Contains(string(out), haikuModel+": ATTEMPT_OUTCOME_REJECTED REASON_CATEGORY_PROVIDER_ERROR") {
		t.Errorf("all-failed run: err %v, output %q", err, out)
	}
}

// A quiet WatchMetrics stream survives keepalive pings: the server accepts them every
// 5 s, where gRPC's default (5 min) answers with GOAWAY "too_many_pings" after two.
// Slow (45 s): runs only with LLM_ROUTER_GO_SLOW=1.
func TestKeepalivePingsDoNotBreakAQuietStream(t *testing.T) {
	if os.Getenv("LLM_ROUTER_GO_SLOW") == "" {
		t.Skip("slow: set LLM_ROUTER_GO_SLOW=1")
	}
	client := dial(t, llmrouter.WithDialOptions(grpc.WithKeepaliveParams(keepalive.ClientParameters{
		Time: 10 * time.Second, Timeout: 5 * time.Second,
	})))
	ctx := routeCtx(t, 45*time.Second)
	stream, err := client.WatchMetrics(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv() // nothing happens until the context's deadline
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("quiet stream ended with %v, want DeadlineExceeded after 45 s", err)
	}
}
