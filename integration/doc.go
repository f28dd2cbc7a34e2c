// Package integration tests hyper-sched from the outside: it builds the
// real binary once, starts the real daemon with real worker processes, and
// talks to it over real HTTP, as users do.
package integration
