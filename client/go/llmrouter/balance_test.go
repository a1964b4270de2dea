package llmrouter_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/llm-router/llm-router/client/go/llmrouter"
	llmrouterv1 "github.com/llm-router/llm-router/client/go/llmrouterv1"
)

// Several targets: calls are spread round-robin over every replica, and a replica
// that stops is skipped. The replicas are Go gRPC servers that answer with their own
// name, so each call says where it went; the balancing is all on the client's side.

type namedReplica struct {
	llmrouterv1.UnimplementedRouterServer
	name string
}

func (r namedReplica) Route(context.Context, *llmrouterv1.RouteRequest) (*llmrouterv1.RouteResponse, error) {
	return &llmrouterv1.RouteResponse{ModelUsed: r.name}, nil
}

func startReplicas(t *testing.T, n int) ([]string, []*grpc.Server) {
	t.Helper()
	var targets []string
	var servers []*grpc.Server
	for i := range n {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		server := grpc.NewServer()
		llmrouterv1.RegisterRouterServer(server, namedReplica{name: fmt.Sprintf("r%d", i)})
		go func() { _ = server.Serve(lis) }()
		t.Cleanup(server.Stop)
		targets = append(targets, lis.Addr().String())
		servers = append(servers, server)
	}
	return targets, servers
}

func spread(t *testing.T, client *llmrouter.Client, calls int) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for range calls {
		resp, err := client.Route(routeCtx(t, 10*time.Second), llmrouter.Request{Messages: user("hi")})
		if err != nil {
			t.Fatal(err)
		}
		counts[resp.GetModelUsed()]++
	}
	return counts
}

// warmUp calls until each of the n replicas has answered once: round-robin only uses the
// connections that are up, and the first calls come before all of them are.
func warmUp(t *testing.T, client *llmrouter.Client, n int) {
	t.Helper()
	seen := map[string]int{}
	for deadline := time.Now().Add(10 * time.Second); len(seen) < n; {
		if time.Now().After(deadline) {
			t.Fatalf("within 10 s only %v answered", seen)
		}
		for name, count := range spread(t, client, 1) {
			seen[name] += count
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestATargetListSpreadsCallsOverEveryReplicaAndSkipsAStoppedOne(t *testing.T) {
	targets, servers := startReplicas(t, 3)
	client := dialTo(t, strings.Join(targets, ","))
	warmUp(t, client, 3)
	counts := spread(t, client, 30)
	t.Logf("30 calls over 3 replicas: %v", counts)
	for _, name := range []string{"r0", "r1", "r2"} {
		if counts[name] < 8 {
			t.Errorf("replica %s got %d of 30 calls: %v", name, counts[name], counts)
		}
	}
	servers[1].GracefulStop() // as a replica stops on SIGTERM: GOAWAY, then closed
	after := spread(t, client, 20)
	if after["r1"] != 0 || after["r0"]+after["r2"] != 20 {
		t.Errorf("after r1 stopped: %v", after)
	}
}

func TestHostNamesInAListAreBalancedToo(t *testing.T) {
	targets, _ := startReplicas(t, 2)
	for i, target := range targets {
		targets[i] = strings.Replace(target, "127.0.0.1", "localhost", 1)
	}
	client := dialTo(t, strings.Join(targets, ","))
	warmUp(t, client, 2)
	counts := spread(t, client, 10)
	if counts["r0"] != 5 || counts["r1"] != 5 {
		t.Errorf("calls: %v", counts)
	}
}

func TestATargetListHoldsHostPortEntriesOnly(t *testing.T) {
	for _, bad := range []string{"127.0.0.1:1,nowhere", "127.0.0.1:1,dns:///x:2"} {
		if _, err := llmrouter.Dial(bad); err == nil || !strings.Contains(err.Error(), "not host:port") {
			t.Errorf("Dial(%q): err %v", bad, err)
		}
	}
}
