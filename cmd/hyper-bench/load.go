package main

import (
	"context"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// loadConfig is one run's load settings, validated by the run command.
type loadConfig struct {
	CallURL     string        // the /call URL
	Classes     []Class       // at least one
	Mode        string        // "open" or "closed"
	Rate        float64       // open: calls per second, all classes together
	Clients     int           // closed: concurrent clients
	Duration    time.Duration // measured window
	Warmup      time.Duration // sent but not counted, before the window
	Drain       time.Duration // how long to wait for answers after the window
	Timeout     time.Duration // per call
	MaxInflight int           // open: calls in flight at most
	Seed        uint64        // for arrivals and class choice
}

// live holds counters the progress line reads while the run goes on. They
// include the warm-up, unlike the result.
type live struct {
	sent, ok, rejected, missed, errors, inflight atomic.Int64
}

// generator sends one run's calls and tallies the answers.
type generator struct {
	cfg    loadConfig
	client *http.Client
	bodies [][]byte
	pick   picker

	mu      sync.Mutex
	tallies []tally // measured window, by class
	warm    []tally // warm-up, by class; counted only for the progress line

	live        live
	lateSends   atomic.Int64
	maxLag      atomic.Int64 // ns
	maxInflight atomic.Int64
}

func newGenerator(cfg loadConfig) *generator {
	conns := cfg.Clients
	if cfg.Mode == "open" {
		conns = cfg.MaxInflight
	}
	tr := &http.Transport{
		Proxy:       nil, // never send benchmark traffic through an environment proxy
		DialContext: (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		// Keep-alive: every connection opened stays idle for reuse, so
		// after the first calls no call pays a TCP handshake. Go's
		// default of 2 idle connections per host would make an open-loop
		// run dial (and leave TIME_WAIT sockets) for most calls.
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	g := &generator{
		cfg:     cfg,
		client:  &http.Client{Transport: tr, Timeout: cfg.Timeout},
		pick:    newPicker(cfg.Classes),
		tallies: make([]tally, len(cfg.Classes)),
		warm:    make([]tally, len(cfg.Classes)),
	}
	for _, c := range cfg.Classes {
		g.bodies = append(g.bodies, c.callBody())
	}
	return g
}

// run sends calls from start for the warm-up plus the window, waits for the
// answers (at most the drain period), and returns the measured window's
// length: shorter than cfg.Duration if ctx was cancelled.
func (g *generator) run(ctx context.Context, start time.Time) time.Duration {
	defer g.client.CloseIdleConnections()
	from := start.Add(g.cfg.Warmup)
	end := from.Add(g.cfg.Duration)
	reqCtx, cancelReqs := context.WithCancel(ctx)
	defer cancelReqs()
	var wg sync.WaitGroup
	if g.cfg.Mode == "open" {
		g.open(ctx, reqCtx, &wg, start, from, end)
	} else {
		g.closed(ctx, reqCtx, &wg, from, end)
	}
	stopped := time.Now()
	drain := time.AfterFunc(g.cfg.Drain, cancelReqs)
	wg.Wait()
	drain.Stop()
	if ctx.Err() == nil || stopped.After(end) {
		return g.cfg.Duration
	}
	return max(stopped.Sub(from), 0)
}

// open sends calls at Poisson arrival times. Each call's latency counts from
// its intended time, so a server (or generator) that falls behind shows up
// as latency, never as fewer samples: no coordinated omission.
func (g *generator) open(ctx, reqCtx context.Context, wg *sync.WaitGroup, start, from, end time.Time) {
	rng := rand.New(rand.NewPCG(g.cfg.Seed, 0x9e3779b97f4a7c15))
	sem := make(chan struct{}, g.cfg.MaxInflight)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	next := start
	for {
		next = next.Add(time.Duration(rng.ExpFloat64() / g.cfg.Rate * float64(time.Second)))
		if !next.Before(end) {
			// No arrival is left in the window: wait for its end, so
			// that the drain clock starts there.
			timer.Reset(time.Until(end))
			select {
			case <-timer.C:
			case <-ctx.Done():
			}
			return
		}
		if d := time.Until(next); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		if lag := time.Since(next); lag > time.Millisecond {
			g.lateSends.Add(1)
			if int64(lag) > g.maxLag.Load() {
				g.maxLag.Store(int64(lag)) // only this goroutine writes
			}
		}
		ci := g.pick.pick(rng)
		intended := next
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			g.call(reqCtx, ci, intended, !intended.Before(from))
		}()
	}
}

// closed runs cfg.Clients clients, each sending its next call as soon as
// the previous one is answered. Latency counts from each send.
func (g *generator) closed(ctx, reqCtx context.Context, wg *sync.WaitGroup, from, end time.Time) {
	var clients sync.WaitGroup
	for i := range g.cfg.Clients {
		clients.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer clients.Done()
			rng := rand.New(rand.NewPCG(g.cfg.Seed, uint64(i)+1))
			for ctx.Err() == nil {
				now := time.Now()
				if !now.Before(end) {
					return
				}
				g.call(reqCtx, g.pick.pick(rng), now, !now.Before(from))
			}
		}()
	}
	// Return (and start the drain clock) once every client has sent its
	// last call, or ctx ends.
	done := make(chan struct{})
	go func() { clients.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Until(end)):
	case <-ctx.Done():
	}
}

// call sends one call of class ci and tallies its answer; latency counts
// from since. Calls outside the window (record false) count only live.
func (g *generator) call(ctx context.Context, ci int, since time.Time, record bool) {
	g.live.sent.Add(1)
	n := g.live.inflight.Add(1)
	for cur := g.maxInflight.Load(); n > cur && !g.maxInflight.CompareAndSwap(cur, n); cur = g.maxInflight.Load() {
	}
	code, body, err := g.post(ctx, g.bodies[ci])
	lat := time.Since(since)
	g.live.inflight.Add(-1)
	if err != nil && ctx.Err() != nil {
		err = errUnfinished
	}
	g.mu.Lock()
	t := &g.warm[ci]
	if record {
		t = &g.tallies[ci]
	}
	o := t.add(code, body, err, lat, time.Duration(g.cfg.Classes[ci].DeadlineMs*float64(time.Millisecond)))
	g.mu.Unlock()
	switch o {
	case OK:
		g.live.ok.Add(1)
	case Rejected:
		g.live.rejected.Add(1)
	case Missed:
		g.live.missed.Add(1)
	default:
		g.live.errors.Add(1)
	}
}

// maxAnswer bounds the part of an answer read: /call answers are small.
const maxAnswer = 1 << 20

// post sends one /call. On error tally.add looks at nothing but the error.
func (g *generator) post(ctx context.Context, body []byte) (int, []byte, error) {
	return do(ctx, g.client, http.MethodPost, g.cfg.CallURL, "application/json", body)
}
