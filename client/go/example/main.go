// Command example sends one Route call with a JSON Schema and prints the answer,
// or every attempt when all models failed.
//
//	go run ./example -target 127.0.0.1:50051 "nginx is down. What now?"
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"llm-router/client/go/llmrouter"
)

// Decision is the answer the schema asks for.
type Decision struct {
	Action string `json:"action"`
}

func main() {
	target := flag.String("target", "127.0.0.1:50051", "host:port of the llm-router server")
	timeout := flag.Duration("timeout", 40*time.Second, "deadline of the whole chain")
	flag.Parse()
	prompt := strings.Join(flag.Args(), " ")
	if prompt == "" {
		prompt = "nginx is down. What now?"
	}

	client, err := llmrouter.Dial(*target)
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
