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
	MaxInflight int           // open and cameras: calls in flight at most
	Seed        uint64        // for arrivals and class choice
	Cameras     int           // cameras: how many; open and closed send camera 0's frames
	FPS         float64       // cameras: frames per second of each
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
	frames [][][]byte // by class: frameBodies, nil for a class without frames
	rr     []atomic.Uint64
	pick   picker

	mu      sync.Mutex
	tallies []tally // measured window, by class
	warm    []tally // warm-up, by class; counted only for the progress line

	live        live
	lateSends   atomic.Int64
	maxLag      atomic.Int64 // ns
	maxInflight atomic.Int64
}

func newGenerator(cfg loadConfig) (*generator, error) {
	conns := cfg.Clients
	if cfg.Mode == "open" || cfg.Mode == "cameras" {
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
	g.frames = make([][][]byte, len(cfg.Classes))
	g.rr = make([]atomic.Uint64, len(cfg.Classes))
	for i, c := range cfg.Classes {
		g.bodies = append(g.bodies, c.callBody())
		if c.Frames != nil {
			var err error
			if g.frames[i], err = c.frameBodies(max(cfg.Cameras, 1)); err != nil {
				return nil, err
			}
		}
	}
	return g, nil
}

// nextBody is the body of class ci's next call in open and closed loop:
// a frames class sends camera 0's frames in turn.
func (g *generator) nextBody(ci int) []byte {
	if g.frames[ci] == nil {
		return g.bodies[ci]
	}
	loop := uint64(g.cfg.Classes[ci].Frames.Loop)
	return g.frames[ci][(g.rr[ci].Add(1)-1)%loop]
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
	switch g.cfg.Mode {
	case "open":
		g.open(ctx, reqCtx, &wg, start, from, end)
	case "cameras":
		g.cameras(ctx, reqCtx, &wg, start, from, end)
	default:
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
			g.waitEnd(ctx, timer, end)
			return
		}
		ci := g.pick.pick(rng)
		if !g.sendAt(ctx, reqCtx, wg, sem, timer, next, from, ci, g.nextBody(ci)) {
			return
		}
	}
}

// waitEnd waits for the window's end when no arrival is left in it, so
// that the drain clock starts there.
func (g *generator) waitEnd(ctx context.Context, timer *time.Timer, end time.Time) {
	timer.Reset(time.Until(end))
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
}

// sendAt waits until next, then for a place among the calls in flight, and
// sends class ci's call with body in its own goroutine, its latency counted
// from next. It returns false when ctx ended first. One goroutine calls it
// (the arrival loop), which is what makes the lag bookkeeping safe.
func (g *generator) sendAt(ctx, reqCtx context.Context, wg *sync.WaitGroup, sem chan struct{}, timer *time.Timer,
	next, from time.Time, ci int, body []byte) bool {
	if d := time.Until(next); d > 0 {
		timer.Reset(d)
		select {
		case <-timer.C:
		case <-ctx.Done():
			return false
		}
	}
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	if lag := time.Since(next); lag > time.Millisecond {
		g.lateSends.Add(1)
		if int64(lag) > g.maxLag.Load() {
			g.maxLag.Store(int64(lag)) // only the arrival loop writes
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() { <-sem }()
		g.call(reqCtx, ci, body, next, !next.Before(from))
	}()
	return true
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
				ci := g.pick.pick(rng)
				g.call(reqCtx, ci, g.nextBody(ci), now, !now.Before(from))
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

// call sends one call of class ci with body and tallies its answer; latency
// counts from since. Calls outside the window (record false) count only live.
func (g *generator) call(ctx context.Context, ci int, body []byte, since time.Time, record bool) {
	g.live.sent.Add(1)
	n := g.live.inflight.Add(1)
	for cur := g.maxInflight.Load(); n > cur && !g.maxInflight.CompareAndSwap(cur, n); cur = g.maxInflight.Load() {
	}
	code, answer, err := g.post(ctx, body)
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
	o := t.add(code, answer, err, lat, time.Duration(g.cfg.Classes[ci].DeadlineMs*float64(time.Millisecond)))
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
