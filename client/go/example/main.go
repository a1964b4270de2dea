// Command example sends one Route call with a JSON Schema and prints the answer,
// or every attempt when all models failed. The token and TLS settings come from
// LLM_ROUTER_TOKEN, LLM_ROUTER_CA, LLM_ROUTER_CERT, LLM_ROUTER_KEY, ... (none: plain text).
//
//	go run ./example -target 127.0.0.1:50051 "nginx is down. What now?"
//	LLM_ROUTER_TOKEN=... LLM_ROUTER_CA=ca.pem go run ./example -target router.internal:50051
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/llm-router/llm-router/client/go/llmrouter"
)

// Decision is the answer the schema asks for.
type Decision struct {
	Action string `json:"action"`
}

func main() {
	target := flag.String("target", llmrouter.EnvTarget(), "host:port of the llm-router server ($LLM_ROUTER_TARGET)")
	timeout := flag.Duration("timeout", 40*time.Second, "deadline of the whole chain")
	flag.Parse()
	prompt := strings.Join(flag.Args(), " ")
	if prompt == "" {
		prompt = "nginx is down. What now?"
	}

	connection, err := llmrouter.EnvOptions() // token and TLS from LLM_ROUTER_*
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	client, err := llmrouter.Dial(*target, connection...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer client.Close()

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	resp, err := client.Route(ctx, llmrouter.Request{
		Messages: []llmrouter.Message{{Role: "user", Content: prompt}},
		Schema: map[string]any{
			"type":       "object",
			"required":   []string{"action"},
			"properties": map[string]any{"action": map[string]any{"enum": []string{"restart", "escalate"}}},
		},
		Context: "example.go",
	})
	var failed *llmrouter.RouteError
	switch {
	case errors.As(err, &failed):
		fmt.Fprintf(os.Stderr, "%s: %s\n", failed.Code, failed.Message)
		if failed.Hint != "" { // what to change: a token, TLS, a certificate
			fmt.Fprintf(os.Stderr, "hint: %s\n", failed.Hint)
		}
		for _, a := range failed.Attempts() {
			fmt.Fprintf(os.Stderr, "  %s: %s %s %.0f ms: %s\n",
				a.GetModel(), a.GetOutcome(), a.GetReasonCategory(), a.GetLatencyMs(), a.GetReason())
		}
		os.Exit(1)
	case err != nil:
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var decision Decision
	if err := llmrouter.DecodeContent(resp, &decision); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("%s answered: action=%s (%.0f ms, %d attempt(s))\n",
		resp.GetModelUsed(), decision.Action, resp.GetLatencyMs(), len(resp.GetAttempts()))
}
