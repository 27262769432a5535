package endpoint

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/endpointsharding"
	"google.golang.org/grpc/balancer/pickfirst"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"
	"google.golang.org/grpc/status"

	"github.com/grpc-resilience/resilience/internal/outcome"
)

// Name is the name the policy is registered under, the key of its entry in a
// service config's loadBalancingConfig.
const Name = "resilience_endpoint"

func init() {
	// Like grpc-go's own policies: a balancer is found by name only.
	balancer.Register(builder{})
}

type builder struct{}

func (builder) Name() string { return Name }

// ParseConfig parses the policy's JSON config; see the package
// documentation for its fields.
func (builder) ParseConfig(js json.RawMessage) (serviceconfig.LoadBalancingConfig, error) {
	return parseConfig(js)
}

func (builder) Build(cc balancer.ClientConn, opts balancer.BuildOptions) balancer.Balancer {
	b := &lbBalancer{
		ClientConn: cc,
		target:     opts.Target.String(),
		eps:        resolver.NewEndpointMap[*epStats](),
	}
	// One pick_first child per endpoint, as grpc-go's round_robin and
	// weighted_round_robin are built: pick_first walks an endpoint's
	// addresses (e.g. IPv4 and IPv6 of one pod) and reconnects it.
	b.child = endpointsharding.NewBalancer(b, opts, balancer.Get(pickfirst.Name).Build, endpointsharding.Options{})
	return b
}

// lbBalancer is the policy for one channel. It embeds the channel's
// balancer.ClientConn to intercept the pickers endpointsharding sends up.
type lbBalancer struct {
	balancer.ClientConn
	target string
	child  balancer.Balancer

	mu  sync.Mutex
	det *detector // nil until the first config
	eps *resolver.EndpointMap[*epStats]

	ready atomic.Int32 // endpoints in the last picker, for tests
	// changed is closed and replaced whenever the balancer takes a new
	// config or state (guarded by mu), so that tests can wait for it.
	changed chan struct{}
}

// changedLocked wakes the waiters of changes. Caller holds b.mu.
func (b *lbBalancer) changedLocked() {
	if b.changed != nil {
		close(b.changed)
	}
	b.changed = make(chan struct{})
}

// changes returns a channel closed at the balancer's next config or state
// update, for tests.
func (b *lbBalancer) changes() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changed == nil {
		b.changed = make(chan struct{})
	}
	return b.changed
}

func (b *lbBalancer) UpdateClientConnState(ccs balancer.ClientConnState) error {
	lc, ok := ccs.BalancerConfig.(*lbConfig)
	if !ok {
		return fmt.Errorf("%s: received config of type %T, want one parsed by the policy", Name, ccs.BalancerConfig)
	}
	b.mu.Lock()
	built := b.det == nil
	if built {
		b.det = newDetector(b.target, lc.cfg)
	} else {
		b.det.reconfigure(lc.cfg)
	}
	next := resolver.NewEndpointMap[*epStats]()
	for _, ep := range ccs.ResolverState.Endpoints {
		if _, dup := next.Get(ep); dup {
			continue
		}
		st, ok := b.eps.Get(ep)
		if !ok {
			st = b.det.add(endpointAddr(ep))
		}
		next.Set(ep, st)
	}
	var gone []*epStats
	for ep, st := range b.eps.All() {
		if _, ok := next.Get(ep); !ok {
			gone = append(gone, st)
		}
	}
	b.eps = next
	det := b.det
	b.mu.Unlock()
	for _, st := range gone {
		det.remove(st) // no state is kept for removed endpoints
	}
	if built && lc.cfg.onBuild != nil {
		lc.cfg.onBuild(b)
	}
	// endpointsharding sends its picker up through b.UpdateState, inline.
	return b.child.UpdateClientConnState(balancer.ClientConnState{
		ResolverState: pickfirst.EnableHealthListener(ccs.ResolverState),
	})
}

func endpointAddr(ep resolver.Endpoint) string {
	if len(ep.Addresses) == 1 {
		return ep.Addresses[0].Addr
	}
	addrs := make([]string, len(ep.Addresses))
	for i, a := range ep.Addresses {
		addrs[i] = a.Addr
	}
	return strings.Join(addrs, ",")
}

func (b *lbBalancer) ResolverError(err error) { b.child.ResolverError(err) }

func (b *lbBalancer) UpdateSubConnState(balancer.SubConn, balancer.SubConnState) {
	// Deprecated in grpc-go; SubConns report to their listeners.
}

func (b *lbBalancer) ExitIdle() { b.child.ExitIdle() }

func (b *lbBalancer) Close() {
	b.child.Close()
	b.mu.Lock()
	det := b.det
	b.mu.Unlock()
	if det != nil {
		det.close()
	}
}

// UpdateState receives endpointsharding's aggregated state and replaces its
// picker by ours when at least one endpoint is ready.
func (b *lbBalancer) UpdateState(state balancer.State) {
	b.mu.Lock()
	defer b.mu.Unlock() // held while sending up, so pickers arrive in order
	defer b.changedLocked()
	var ready []readyEndpoint
	for _, cs := range endpointsharding.ChildStatesFromPicker(state.Picker) {
		if cs.State.ConnectivityState != connectivity.Ready {
			continue
		}
		if st, ok := b.eps.Get(cs.Endpoint); ok {
			ready = append(ready, readyEndpoint{cs.State.Picker, st})
		}
	}
	b.ready.Store(int32(len(ready)))
	if len(ready) == 0 || b.det == nil {
		// Nothing to choose between: endpointsharding's picker queues or
		// fails picks according to its aggregated state.
		b.ClientConn.UpdateState(state)
		return
	}
	p := &picker{ready: ready, det: b.det}
	p.next.Store(rand.Uint32()) // as round_robin: clients do not all start at one endpoint
	b.ClientConn.UpdateState(balancer.State{ConnectivityState: connectivity.Ready, Picker: p})
}

// detector returns b's detector, for tests.
func (b *lbBalancer) detector() *detector {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.det
}

type readyEndpoint struct {
	picker balancer.Picker
	ep     *epStats
}

// picker picks among the ready endpoints: round robin over those in
// service, preferring for a call with a record (NewCall) an endpoint the call
// has not tried yet.
type picker struct {
	ready []readyEndpoint
	det   *detector
	next  atomic.Uint32
}

// Preference classes, best first.
const (
	untriedInService = iota
	untriedEjected
	triedInService
	triedEjected
	classes
)

func (p *picker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	c := callFrom(info.Ctx)
	start := p.next.Add(1)
	if c != nil {
		c.mu.Lock() // held from choice to record: hedges never share
	}
	i, expired := p.choose(start, c)
	r := p.ready[i]
	res, err := r.picker.Pick(info)
	idx := -1
	if c != nil {
		if err == nil {
			idx = len(c.picks)
			c.picks = append(c.picks, pick{ep: r.ep})
		}
		c.mu.Unlock()
	}
	if expired {
		p.det.sweep() // delivers OnEject outside the call's lock
	}
	if err != nil {
		return res, err
	}
	done, ctx, det := res.Done, info.Ctx, p.det
	res.Done = func(di balancer.DoneInfo) {
		if k := classify(di.Err, ctx, c); k != outcome.CallerGone {
			if det.record(r.ep, k == outcome.ServerFailure) && c != nil {
				c.markEjected(idx)
			}
		}
		if done != nil {
			done(di)
		}
	}
	return res, nil
}

// choose returns the index of the endpoint to pick: the round-robin one if
// it is in the best class present, else one of the best class, taken in
// turn by the round-robin counter's lap (start/n), so that the picks a
// skipped endpoint would have had are spread evenly over the others
// without a random source.
// expired reports an ejection found over, for the caller to sweep.
func (p *picker) choose(start uint32, c *call) (i int, expired bool) {
	n := uint32(len(p.ready))
	var (
		now     int64
		haveNow bool
	)
	class := func(i uint32) int {
		e := p.ready[i].ep
		k := untriedInService
		if u := e.until.Load(); u != 0 {
			if !haveNow {
				now, haveNow = p.det.elapsed(), true
			}
			if now < u {
				k = untriedEjected
			} else {
				expired = true
			}
		}
		if c != nil && c.triedLocked(e) {
			k += triedInService
		}
		return k
	}
	first := start % n
	if n == 1 || class(first) == untriedInService {
		return int(first), expired
	}
	var counts [classes]int
	for j := range n {
		counts[class(j)]++
	}
	best := 0
	for counts[best] == 0 {
		best++
	}
	// The lap, not start itself: the starts that land on one endpoint are
	// all ≡ first (mod n), and would visit only some of the best class
	// when n and its size share a factor.
	r := int((start / n) % uint32(counts[best]))
	for j := range n {
		if class(j) == best {
			if r == 0 {
				return int(j), expired
			}
			r--
		}
	}
	return int(first), expired // an ejection changed between the passes
}

// classify sorts an attempt's outcome for the detector: outcome.Of, whose
// server failures count against the endpoint, whose request faults count
// as answers and whose caller-gone outcomes are not counted; and a
// DeadlineExceeded status is the caller giving up, not the endpoint's
// failure, once the call's context is done. With a record, the call's own
// context tells the caller's deadline from an attempt timeout or a deadline
// the server sent; without one, a done attempt context is taken as the
// caller's.
func classify(err error, attemptCtx context.Context, c *call) outcome.Kind {
	k := outcome.Of(err)
	if k != outcome.ServerFailure || status.Code(err) != codes.DeadlineExceeded {
		return k
	}
	callCtx := attemptCtx
	if c != nil {
		callCtx = c.Context
	}
	if callCtx != nil && callCtx.Err() != nil {
		return outcome.CallerGone
	}
	return k
}
