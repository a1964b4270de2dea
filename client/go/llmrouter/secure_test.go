package llmrouter_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/llm-router/llm-router/client/go/llmrouter"
	llmrouterv1 "github.com/llm-router/llm-router/client/go/llmrouterv1"
)

// The secured server (TLS, client certificates, a bearer token) and what the client
// says when its settings do not match.

func mtls() llmrouter.TLS {
	return llmrouter.TLS{CA: pki.ca, Cert: pki.clientCert, Key: pki.clientKey}
}

func TestRouteOverMutualTLSWithAToken(t *testing.T) {
	client := dialTo(t, secureTarget, llmrouter.WithToken(secureToken), llmrouter.WithTLS(mtls()))
	resp, err := client.Route(routeCtx(t, 30*time.Second), llmrouter.Request{Messages: user("hi"), Context: "go.secure"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetModelUsed() != ollamaModel {
		t.Errorf("model_used = %q", resp.GetModelUsed())
	}
}

func TestDialEnvReadsEverySetting(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(secureToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, value := range map[string]string{
		"LLM_ROUTER_TARGET":     secureTarget,
		"LLM_ROUTER_TOKEN":      "",
		"LLM_ROUTER_TOKEN_FILE": tokenFile,
		"LLM_ROUTER_CA":         pki.ca,
		"LLM_ROUTER_CERT":       pki.clientCert,
		"LLM_ROUTER_KEY":        pki.clientKey,
	} {
		t.Setenv(name, value)
	}
	client, err := llmrouter.DialEnv()
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.Route(routeCtx(t, 30*time.Second), llmrouter.Request{Messages: user("hi")}); err != nil {
		t.Fatal(err)
	}
}

// wantHint checks that err is a *RouteError matching sentinel whose hint contains hint.
func wantHint(t *testing.T, err error, sentinel error, hint string) {
	t.Helper()
	var failed *llmrouter.RouteError
	if !errors.As(err, &failed) || !errors.Is(err, sentinel) {
		t.Fatalf("err = %v, want %v", err, sentinel)
	}
	if !strings.Contains(failed.Hint, hint) || !strings.Contains(err.Error(), hint) {
		t.Errorf("hint %q (error %q), want it to contain %q", failed.Hint, err, hint)
	}
}

func TestSettingsThatDoNotMatchTheServerSayWhatToChange(t *testing.T) {
	cases := []struct {
		name     string
		target   string
		opts     []llmrouter.Option
		sentinel error
		hint     string
	}{
		{"no token", secureTarget, []llmrouter.Option{llmrouter.WithTLS(mtls())}, llmrouter.ErrUnauthenticated, "requires a bearer token"},
		{"wrong token", secureTarget, []llmrouter.Option{llmrouter.WithToken("wrong-0123456789abcdef"), llmrouter.WithTLS(mtls())}, llmrouter.ErrUnauthenticated, "did not accept this token"},
		{"plaintext against TLS", secureTarget, []llmrouter.Option{llmrouter.WithToken(secureToken)}, llmrouter.ErrUnreachable, "probably serves TLS"},
		{"TLS against plaintext", target, []llmrouter.Option{llmrouter.WithTLS(mtls())}, llmrouter.ErrUnreachable, "speaks plaintext"},
		{"no client certificate", secureTarget, []llmrouter.Option{llmrouter.WithToken(secureToken), llmrouter.WithTLS(llmrouter.TLS{CA: pki.ca})}, llmrouter.ErrUnreachable, "requires a client certificate"},
		{"untrusted server", secureTarget, []llmrouter.Option{llmrouter.WithToken(secureToken), llmrouter.WithTLS(llmrouter.TLS{Cert: pki.clientCert, Key: pki.clientKey})}, llmrouter.ErrUnreachable, "not signed by a CA this client trusts"},
		{"another name", secureTarget, []llmrouter.Option{llmrouter.WithToken(secureToken), llmrouter.WithTLS(llmrouter.TLS{CA: pki.ca, Cert: pki.clientCert, Key: pki.clientKey, ServerName: "router.internal"})}, llmrouter.ErrUnreachable, "ServerName"},
		{"nothing listening", "127.0.0.1:1", nil, llmrouter.ErrUnreachable, "nothing listens"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := dialTo(t, c.target, c.opts...).Route(routeCtx(t, 10*time.Second), llmrouter.Request{Messages: user("hi")})
			wantHint(t, err, c.sentinel, c.hint)
		})
	}
}

func TestDialRejectsUnusableTLSFiles(t *testing.T) {
	for _, tls := range []llmrouter.TLS{{CA: "/nonexistent/ca.pem"}, {Cert: pki.clientCert}} {
		if _, err := llmrouter.Dial(secureTarget, llmrouter.WithTLS(tls)); err == nil {
			t.Errorf("Dial with %+v: no error", tls)
		}
	}
}

func TestWatchMetricsCarriesTheTokenAndTypedErrors(t *testing.T) {
	ctx := routeCtx(t, 30*time.Second)
	stream, err := dialTo(t, secureTarget, llmrouter.WithToken(secureToken), llmrouter.WithTLS(mtls())).WatchMetrics(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if first, err := stream.Recv(); err != nil || first.GetSnapshot() == nil {
		t.Fatalf("first message %v, err %v", first, err)
	}
	stream, err = dialTo(t, secureTarget, llmrouter.WithTLS(mtls())).WatchMetrics(ctx, nil)
	if err == nil {
		_, err = stream.Recv()
	}
	wantHint(t, err, llmrouter.ErrUnauthenticated, "requires a bearer token")
}

func TestARefusalIsErrRefusedWithTheAttempts(t *testing.T) {
	_, err := dial(t).Route(routeCtx(t, 30*time.Second), llmrouter.Request{Messages: user("[refuse] hi"), Chain: "strict"})
	var failed *llmrouter.RouteError
	if !errors.As(err, &failed) || !errors.Is(err, llmrouter.ErrRefused) || failed.Code != codes.PermissionDenied {
		t.Fatalf("err = %v, want ErrRefused", err)
	}
	attempts := failed.Attempts()
	if len(attempts) != 1 || attempts[0].GetModel() != haikuModel ||
		attempts[0].GetReasonCategory() != llmrouterv1.ReasonCategory_REASON_CATEGORY_SAFETY_REFUSAL {
		t.Errorf("attempts = %v", attempts)
	}
	if errors.Is(err, llmrouter.ErrAllModelsFailed) {
		t.Errorf("a refusal is not ErrAllModelsFailed")
	}
}

func TestTheExampleProgramReadsTheConnectionFromTheEnvironment(t *testing.T) {
	cmd := exec.Command("go", "run", "../example", "nginx is down. What now?")
	cmd.Env = append(os.Environ(),
		"LLM_ROUTER_TARGET="+secureTarget, "LLM_ROUTER_TOKEN="+secureToken,
		"LLM_ROUTER_CA="+pki.ca, "LLM_ROUTER_CERT="+pki.clientCert, "LLM_ROUTER_KEY="+pki.clientKey,
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if want := ollamaModel + " answered: action=restart"; !strings.Contains(string(out), want) {
		t.Errorf("output %q, want %q", out, want)
	}
}
