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

// target is the running server's host:port, set by TestMain.
var target string

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
	config := filepath.Join(dir, "llm-router.toml")
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

[chains.default]
models = [
  { model = %q, timeout = 10, api_base = %q },
  { model = %q, timeout = 10, api_base = %q },
]
`, ollamaModel, upURL, haikuModel, upURL)
	if err := os.WriteFile(config, []byte(toml), 0o600); err != nil {
		return nil, err
	}

	serverLog := &logBuffer{}
	server := exec.Command(python, "-m", "llm_router_server", "serve", "--config", config)
	server.Dir, server.Env = root, env
	serverErr, _ := server.StderrPipe()
	server.Stdout = serverLog
	if err := server.Start(); err != nil {
		return nil, err
	}
	stops = append(stops, func() {
		_ = server.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = server.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = server.Process.Kill()
			<-done
		}
	})
	target, err = waitForLine(serverErr, regexp.MustCompile(`serving on (127\.0\.0\.1:\d+)`), serverLog, 90*time.Second)
	if err != nil {
		return nil, fmt.Errorf("server: %w\n%s", err, serverLog)
	}
	return stopAll, nil
}
