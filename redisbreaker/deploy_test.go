package redisbreaker

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grpc-resilience/resilience/breaker"
	"github.com/redis/go-redis/v9"
)

// Redis as users deploy it, beside the single server of the other tests: a
// Cluster of three masters and a primary managed by Sentinel, each made of
// real redis-server processes on loopback that the test starts and stops.

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// cluster is a Redis Cluster of three masters, no replicas.
type cluster struct {
	nodes   []*redisServer
	clients []*redis.Client // one plain client per node
	addrs   []string
}

// startCluster starts three redis-server processes in cluster mode, gives
// each a third of the slots, makes them meet, and waits until every node
// reports the cluster up.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	ctx := context.Background()
	c := &cluster{}
	var buses []string
	for range 3 {
		dir := t.TempDir()
		addr, bus := freeAddr(t), freeAddr(t)
		n := startRedisWith(t, dir, addr, []string{
			"--port", port(addr), "--bind", "127.0.0.1",
			"--cluster-enabled", "yes", "--cluster-port", port(bus),
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"), "--cluster-node-timeout", "2000",
			"--save", "", "--appendonly", "no", "--dir", dir,
		})
		t.Cleanup(n.kill)
		c.nodes = append(c.nodes, n)
		c.clients = append(c.clients, n.client(t))
		c.addrs = append(c.addrs, addr)
		buses = append(buses, bus)
	}
	ranges := [3][2]int{{0, 5460}, {5461, 10922}, {10923, 16383}}
	for i := range c.nodes {
		if err := c.node(i).Do(ctx, "CLUSTER", "ADDSLOTSRANGE", ranges[i][0], ranges[i][1]).Err(); err != nil {
			t.Fatalf("node %d: CLUSTER ADDSLOTSRANGE: %v", i, err)
		}
		if i > 0 {
			if err := c.node(0).Do(ctx, "CLUSTER", "MEET", "127.0.0.1", port(c.addrs[i]), port(buses[i])).Err(); err != nil {
				t.Fatalf("CLUSTER MEET node %d: %v", i, err)
			}
		}
	}
	eventually(t, 20*time.Second, "the cluster up on every node", func() bool {
		for i := range c.nodes {
			info, err := c.node(i).ClusterInfo(ctx).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:3") {
				return false
			}
		}
		return true
	})
	return c
}

// node returns a plain client of node i.
func (c *cluster) node(i int) *redis.Client { return c.clients[i] }

// dial returns a cluster client of its own, as a fleet member uses it.
func (c *cluster) dial(t *testing.T) redis.UniversalClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:                 c.addrs,
		ContextTimeoutEnabled: true,
		DialTimeout:           200 * time.Millisecond,
	})
	t.Cleanup(func() { cc.Close() })
	return cc
}

// sentinels is a primary, its replica and three Sentinels watching them.
type sentinels struct {
	primary, replica *redisServer
	addrs            []string // the Sentinels'
	t                *testing.T
}

const masterName = "fleet"

// startSentinels starts a primary, a replica of it, and three Sentinels
// (quorum 2, the primary down after 500ms), and waits until the replica is
// in sync and every Sentinel knows the replica and the other Sentinels.
func startSentinels(t *testing.T) *sentinels {
	t.Helper()
	ctx := context.Background()
	d := &sentinels{t: t, primary: startRedis(t)}
	dir, addr := t.TempDir(), freeAddr(t)
	d.replica = startRedisWith(t, dir, addr, []string{
		"--port", port(addr), "--bind", "127.0.0.1", "--replicaof", "127.0.0.1", port(d.primary.addr),
		"--save", "", "--appendonly", "no", "--dir", dir,
	})
	t.Cleanup(d.replica.kill)
	rc := d.replica.client(t)
	eventually(t, 10*time.Second, "the replica in sync", func() bool {
		info, err := rc.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	})
	for range 3 {
		dir, addr := t.TempDir(), freeAddr(t)
		conf := filepath.Join(dir, "sentinel.conf")
		if err := os.WriteFile(conf, fmt.Appendf(nil, "port %s\nbind 127.0.0.1\ndir %s\n"+
			"sentinel monitor %s 127.0.0.1 %s 2\n"+
			"sentinel down-after-milliseconds %[3]s 500\n"+
			"sentinel failover-timeout %[3]s 5000\n",
			port(addr), dir, masterName, port(d.primary.addr)), 0o600); err != nil {
			t.Fatal(err)
		}
		s := startRedisWith(t, dir, addr, []string{conf, "--sentinel"})
		t.Cleanup(s.kill)
		d.addrs = append(d.addrs, addr)
	}
	eventually(t, 30*time.Second, "every Sentinel knows the replica and the others", func() bool {
		for _, a := range d.addrs {
			sc := redis.NewSentinelClient(&redis.Options{Addr: a})
			replicas, err1 := sc.Replicas(ctx, masterName).Result()
			others, err2 := sc.Sentinels(ctx, masterName).Result()
			sc.Close()
			if err1 != nil || err2 != nil || len(replicas) != 1 || len(others) != 2 {
				return false
			}
		}
		return true
	})
	return d
}

// dial returns a Sentinel-backed failover client of its own, as a fleet
// member uses it.
func (d *sentinels) dial(t *testing.T) redis.UniversalClient {
	c := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:            masterName,
		SentinelAddrs:         d.addrs,
		ContextTimeoutEnabled: true,
		DialTimeout:           200 * time.Millisecond,
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// failover kills the primary and waits until every Sentinel names the
// replica as the new one.
func (d *sentinels) failover() {
	t := d.t
	t0 := time.Now()
	d.primary.kill()
	eventually(t, 30*time.Second, "the Sentinels promote the replica", func() bool {
		for _, a := range d.addrs {
			sc := redis.NewSentinelClient(&redis.Options{Addr: a})
			got, err := sc.GetMasterAddrByName(context.Background(), masterName).Result()
			sc.Close()
			if err != nil || len(got) != 2 || net.JoinHostPort(got[0], got[1]) != d.replica.addr {
				return false
			}
		}
		return true
	})
	t.Logf("failover: the replica is primary %v after the primary was killed", time.Since(t0))
}

// On a Cluster of three masters the fleet behaves as on one Redis: one
// member's trouble opens only itself, an outage opens the fleet on the
// quorum, and only healthy members probe.
func TestClusterBadMemberThenOutage(t *testing.T) {
	c := startCluster(t)
	badMemberThenOutage(t, c.dial, nil)
}

// On a Cluster every key of one breaker lands in one slot (the hash tag),
// while different breakers spread over the masters: a round's pipeline
// spans nodes, each breaker's commands go to one.
func TestClusterKeysOfABreakerShareASlot(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	o := Options{Prefix: prefix(t)}
	m := newMember(t, c.dial(t), breaker.Config{OpenTimeout: time.Minute}, o)
	synced(t, m.sh)
	admin := c.dial(t)
	// Two breaker keys on different masters.
	slotOf := func(s string) int64 { n, _ := c.node(0).ClusterKeySlot(ctx, s).Result(); return n }
	master := func(slot int64) int { return int(min(slot/5461, 2)) }
	keys := []string{"k0"}
	for i := 1; len(keys) < 2; i++ {
		if k := fmt.Sprint("k", i); master(slotOf(m.sh.tag(k))) != master(slotOf(m.sh.tag(keys[0]))) {
			keys = append(keys, k)
		}
	}
	for _, key := range keys {
		warmUp(t, admin, []*member{m}, key) // alone: its own quorum
		tripLocal(t, m, key)
		if m.local(key).Own {
			t.Fatalf("%s: a lone caller's trip is the fleet's, got its own", key)
		}
	}
	eventually(t, 5*time.Second, "both open keys set", func() bool {
		for _, key := range keys {
			if n, _ := admin.Exists(ctx, m.sh.tag(key)+":open").Result(); n != 1 {
				return false
			}
		}
		return true
	})
	// Every key the member wrote, node by node.
	byTag := map[string]map[int64]bool{}
	nodes := map[string]map[int]bool{}
	for i := range c.nodes {
		ks, err := c.node(i).Keys(ctx, "{"+o.Prefix+":*").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range ks {
			tag := k[:strings.Index(k, "}")+1]
			if byTag[tag] == nil {
				byTag[tag], nodes[tag] = map[int64]bool{}, map[int]bool{}
			}
			byTag[tag][slotOf(k)] = true
			nodes[tag][i] = true
		}
	}
	t.Logf("keys by breaker: %v; nodes: %v", byTag, nodes)
	for _, key := range keys {
		tag := m.sh.tag(key)
		if len(byTag[tag]) != 1 || len(nodes[tag]) != 1 {
			t.Errorf("breaker %s: keys in slots %v on nodes %v, want one slot on one node", key, byTag[tag], nodes[tag])
		}
	}
	if len(nodes) == 2 && fmt.Sprint(nodes[m.sh.tag(keys[0])]) == fmt.Sprint(nodes[m.sh.tag(keys[1])]) {
		t.Errorf("both breakers on one node: %v", nodes)
	}
}

// With a primary managed by Sentinel, failed over (killed, the replica
// promoted) in the middle of the run: the members run degraded on their
// local breakers meanwhile, share again on the new primary, and the fleet
// then behaves as on one Redis.
func TestSentinelFailoverMidRun(t *testing.T) {
	d := startSentinels(t)
	badMemberThenOutage(t, d.dial, d.failover)
}
