package llmrouter_test

// The Go tests call the real Python server, started once for the package:
// `python -m llm_router_server serve` with a fake model provider behind it
// (`python -m tests.support.serve_upstream`, whose behaviour each test picks with a
// marker in its prompt: [fail], [fallback], [hang], ...).
//
// The Python is $LLM_ROUTER_PYTHON (scripts/test sets it), else the repository's
// .venv/bin/python.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	ollamaModel = "ollama_chat/qwen2.5:7b"
	haikuModel  = "anthropic/claude-haiku-4-5-20251001"
	fakeAnswer  = `{"action": "restart"}`
)

// target is the running server's host:port, set by TestMain; secureTarget is a second
// server that requires TLS with a client certificate (mTLS) and the bearer token
// secureToken, with the certificates of pki (made by makePKI).
var (
	target       string
	secureTarget string
	pki          testPKI
)

const secureToken = "tok-0123456789abcdef-go-secret"

func TestMain(m *testing.M) {
	stop, err := startServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, "llmrouter tests: cannot start the Python server:", err)
		os.Exit(1)
	}
	code := m.Run()
	stop()
	os.Exit(code)
}

func repoRoot() string {
	wd, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	return filepath.Clean(filepath.Join(wd, "..", "..", ".."))
}

func pythonPath(root string) string {
	if p := os.Getenv("LLM_ROUTER_PYTHON"); p != "" {
		return p
	}
	return filepath.Join(root, ".venv", "bin", "python")
}

// logBuffer collects a process's output for error messages, safely across goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitForLine reads r until a line matches re (returning its first group), copying
// every line to log; the rest of r keeps being copied to log in the background.
func waitForLine(r io.Reader, re *regexp.Regexp, log io.Writer, within time.Duration) (string, error) {
	found := make(chan string, 1)
	go func() {
		scanner := bufio.NewScanner(r)
		sent := false
		for scanner.Scan() {
			line := scanner.Text()
			fmt.Fprintln(log, line)
			if m := re.FindStringSubmatch(line); m != nil && !sent {
				found <- m[1]
				sent = true
			}
		}
		close(found)
	}()
	select {
	case v, ok := <-found:
		if !ok {
			return "", fmt.Errorf("process ended before printing %q", re)
		}
		return v, nil
	case <-time.After(within):
		return "", fmt.Errorf("no line matching %q within %s", re, within)
	}
}

func startServer() (stop func(), err error) {
	root := repoRoot()
	python := pythonPath(root)
	if _, err := os.Stat(python); err != nil {
		return nil, fmt.Errorf("%s: %w (run ./scripts/setup, or set LLM_ROUTER_PYTHON)", python, err)
	}
	env := append(os.Environ(),
		"PYTHONPATH="+strings.Join([]string{root, filepath.Join(root, "server"), filepath.Join(root, "client")}, string(os.PathListSeparator)),
		"LITELLM_OFFLINE_MODE=true",
		"ANTHROPIC_API_KEY=sk-ant-test-key",
		"LLM_ROUTER_CONFIG=",
		"LLM_ROUTER_LISTEN=",
	)
	var stops []func()
	stopAll := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	defer func() {
		if err != nil {
			stopAll()
		}
	}()

	// The fake model provider: it stops when its stdin closes, so it never outlives us.
	upLog := &logBuffer{}
	up := exec.Command(python, "-m", "tests.support.serve_upstream", "--answer", fakeAnswer, "--exit-on-stdin-eof")
	up.Dir, up.Env, up.Stderr = root, env, upLog
	upIn, _ := up.StdinPipe()
	upOut, _ := up.StdoutPipe()
	if err := up.Start(); err != nil {
		return nil, err
	}
	stops = append(stops, func() { _ = upIn.Close(); _ = up.Wait() })
	upURL, err := waitForLine(upOut, regexp.MustCompile(`^listening (http://\S+)`), upLog, 60*time.Second)
	if err != nil {
		return nil, fmt.Errorf("fake upstream: %w\n%s", err, upLog)
	}

	dir, err := os.MkdirTemp("", "llmrouter-go-test")
	if err != nil {
		return nil, err
	}
	stops = append(stops, func() { _ = os.RemoveAll(dir) })
	if pki, err = makePKI(dir); err != nil {
		return nil, err
	}
	// The secured server's one model is on the native path: it never loads litellm, whose
	// import would compete for the CPU with the other server's.
	secure := fmt.Sprintf(`
[chains.default]
models = [{ model = %q, timeout = 10, api_base = %q, provider = "native" }]

[auth]
tokens = [%q]

[tls]
cert_file = %q
key_file = %q
client_ca_file = %q
`, ollamaModel, upURL, secureToken, pki.serverCert, pki.serverKey, pki.ca)
	plain := fmt.Sprintf(`
[chains.default]
models = [
  { model = %q, timeout = 10, api_base = %q },
  { model = %q, timeout = 10, api_base = %q },
]

# A provider's safety refusal ends the call (PERMISSION_DENIED) instead of falling through.
[chains.strict]
models = [{ model = %q, timeout = 10, api_base = %q }]
refusal_policy = "stop"
`, ollamaModel, upURL, haikuModel, upURL, haikuModel, upURL)
	// Both servers start at once; each is stopped at the end.
	type started struct {
		target string
		stop   func()
		err    error
	}
	results := make(chan started, 2)
	for i, chains := range []string{plain, secure} {
		go func() {
			t, stop, err := startRouter(python, root, env, filepath.Join(dir, fmt.Sprintf("router%d.toml", i)), chains)
			if i == 0 {
				target = t
			} else {
				secureTarget = t
			}
			results <- started{t, stop, err}
		}()
	}
	for range 2 {
		r := <-results
		if r.stop != nil {
			stops = append(stops, r.stop)
		}
		if r.err != nil && err == nil {
			err = r.err
		}
	}
	if err != nil {
		return nil, err
	}
	return stopAll, nil
}

// startRouter runs `python -m llm_router_server serve` with the common settings below plus
// chainsTOML (chains, security); it returns once it serves.
func startRouter(python, root string, env []string, config, chainsTOML string) (string, func(), error) {
	// deadline_margin_ms: room for the server's DEADLINE_EXCEEDED reply (with its
	// attempts) to beat the client's own deadline on a loaded machine.
	toml := fmt.Sprintf(`
[server]
listen = "127.0.0.1:0"
grace_seconds = 2
deadline_margin_ms = 400

# Each test picks its scenario per request (prompt markers); a circuit breaker would
# carry one test's failures into the next.
[breaker]
enabled = false
%s`, chainsTOML)
	if err := os.WriteFile(config, []byte(toml), 0o600); err != nil {
		return "", nil, err
	}
	serverLog := &logBuffer{}
	server := exec.Command(python, "-m", "llm_router_server", "serve", "--config", config)
	server.Dir, server.Env = root, env
	serverErr, _ := server.StderrPipe()
	server.Stdout = serverLog
	if err := server.Start(); err != nil {
		return "", nil, err
	}
	stop := func() {
		_ = server.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = server.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = server.Process.Kill()
			<-done
		}
	}
	address, err := waitForLine(serverErr, regexp.MustCompile(`serving on (127\.0\.0\.1:\d+)`), serverLog, 90*time.Second)
	if err != nil {
		return "", stop, fmt.Errorf("server: %w\n%s", err, serverLog)
	}
	return address, stop, nil
}
