//go:build race

package broker

// raceEnabled: under the race detector allocations cost more than in a
// normal build, so heap measurements are skipped.
const raceEnabled = true
