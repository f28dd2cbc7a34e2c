// Command gobaseline is the plain-Go baseline for hyper-bench: a net/http
// server answering hyper-sched's POST /call JSON by running the export with
// wazero in a new instance per request, on the request's goroutine.
//
// It is what a Go developer writes without a scheduler: no admission, no
// isolation, no CPU pinning, no deadline enforcement. It only reports
// deadline_met (arrival to answer against expected_deadline) so that
// hyper-bench counts misses the same way for it as for hyper-sched. It must
// never grow scheduling features: it is the control group.
//
//	gobaseline -listen 127.0.0.1:3002 -modules /work/main/testdata
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stderr))
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("gobaseline", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:3002", "address to serve on")
	dir := fs.String("modules", "testdata", "directory whose *.wasm files are registered under their file names")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := newServer(ctx, *dir, log)
	if err != nil {
		log.Error("load modules", "err", err)
		return 1
	}
	defer s.Close(context.Background())
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Error("listen", "err", err)
		return 1
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Info("serving", "addr", ln.Addr().String(), "modules", s.Names())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(stderr, "gobaseline: serve:", err)
		return 1
	}
	return 0
}
