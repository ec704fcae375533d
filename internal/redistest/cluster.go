package redistest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Cluster starts a Redis Cluster of three masters: fresh redis-server
// processes on free loopback ports, without persistence, stopped when the
// test ends. It returns the cluster's URL for hubbub
// (redis+cluster://127.0.0.1:P1?addr=127.0.0.1:P2&addr=127.0.0.1:P3).
// Without redis-server and redis-cli on PATH it skips loudly, or fails
// with HUBBUB_REQUIRE_REDIS=1.
func Cluster(tb testing.TB) string {
	tb.Helper()
	server, err1 := exec.LookPath("redis-server")
	cli, err2 := exec.LookPath("redis-cli")
	if err1 != nil || err2 != nil {
		msg := "!!! redis-server or redis-cli not on PATH: Redis Cluster tests NOT RUN !!!"
		if os.Getenv("HUBBUB_REQUIRE_REDIS") == "1" {
			tb.Fatal(msg + " (HUBBUB_REQUIRE_REDIS=1)")
		}
		tb.Skip(msg)
	}
	dir := tb.TempDir()
	ports := clusterPorts(tb, 3)
	var addrs []string
	for _, p := range ports {
		ps := strconv.Itoa(p)
		cmd := exec.Command(server, "--port", ps, "--bind", "127.0.0.1", "--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, "nodes-"+ps+".conf"), "--cluster-node-timeout", "2000",
			"--save", "", "--appendonly", "no", "--dir", dir, "--logfile", filepath.Join(dir, ps+".log"))
		if err := cmd.Start(); err != nil {
			tb.Fatalf("start redis-server: %v", err)
		}
		tb.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		addrs = append(addrs, "127.0.0.1:"+ps)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, a := range addrs {
		c := goredis.NewClient(&goredis.Options{Addr: a, MaxRetries: -1})
		for c.Ping(ctx).Err() != nil {
			if ctx.Err() != nil {
				tb.Fatalf("redis-server on %s did not answer within 20s", a)
			}
			time.Sleep(20 * time.Millisecond) // polling a starting server, with a deadline
		}
		_ = c.Close()
	}
	out, err := exec.CommandContext(ctx, cli, append(append([]string{"--cluster", "create"}, addrs...),
		"--cluster-replicas", "0", "--cluster-yes")...).CombinedOutput()
	if err != nil {
		tb.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, a := range addrs {
		c := goredis.NewClient(&goredis.Options{Addr: a, MaxRetries: -1})
		for {
			info, _ := c.ClusterInfo(ctx).Result()
			if strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_slots_ok:16384") {
				break
			}
			if ctx.Err() != nil {
				tb.Fatalf("the cluster did not become ok within 20s; %s says:\n%s", a, info)
			}
			time.Sleep(20 * time.Millisecond) // polling the cluster state, with a deadline
		}
		_ = c.Close()
	}
	return "redis+cluster://" + addrs[0] + "?addr=" + addrs[1] + "&addr=" + addrs[2]
}

// clusterPorts picks n free loopback ports p whose cluster bus ports
// (p+10000) are free too.
func clusterPorts(tb testing.TB, n int) []int {
	tb.Helper()
	free := func(p int) bool {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			return false
		}
		_ = l.Close()
		return true
	}
	var ports []int
	for range 1000 {
		p := 20000 + rand.IntN(30000)
		if free(p) && free(p+10000) {
			ports = append(ports, p)
			if len(ports) == n {
				return ports
			}
		}
	}
	tb.Fatal("no free ports for a Redis Cluster")
	return nil
}
