// Package deploy holds no code: the configurations that run hyper-sched
// beyond one machine (DESIGN.md §5b, docs/cluster.md) — HAProxy, nginx
// and Envoy in front of several nodes, and Kubernetes manifests — and the
// tests that check them. HAProxy and nginx also run for real in
// `make cluster-test` (cluster/); Envoy is not packaged by Debian and
// there is no Kubernetes cluster here, so their files are checked for
// structure and for the settings they promise.
package deploy
