//go:build race

package coreworker

// raceFactor scales prepareMax in a race-instrumented build, where
// instantiating even a tiny module takes several times its 50 µs: without
// it such a build would never prepare, and its tests would not see it.
const raceFactor = 20
