// Package nodebaseline holds the Node.js baseline server for hyper-bench
// (server.js): plain `http` and WebAssembly.instantiate per request, the
// same /call JSON contract as hyper-sched and bench/gobaseline.
//
// The Go package exists only for its test, which starts server.js with the
// installed node and checks that contract; it has no Go API and nothing may
// import it.
package nodebaseline
