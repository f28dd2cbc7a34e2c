// Package cluster holds `make cluster-test`: several real hyper-sched
// nodes, each in its own network namespace, behind HAProxy and nginx
// started with the configurations shipped in deploy/ (DESIGN.md §5b,
// docs/cluster.md). It shows that calls a full node refuses are served by
// another within their deadlines, that a node killed mid-run is routed
// around, and that every call gets exactly one answer, and it measures the
// figures of docs/benchmarks.md (goodput of one node and of three behind
// the proxy, the share of calls retried, the time a retry adds).
//
// It has no code of its own: the test needs root, ip netns, nsenter and
// haproxy (nginx for its part), and runs only when HYPER_SCHED_CLUSTER=1
// (the Makefile target sets it); otherwise it skips and says why.
package cluster
