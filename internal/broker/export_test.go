package broker

import "time"

// SkewClock moves the broker's clock d further on, for the tests of package
// broker_test (TTLs across a restart); they undo it with -d.
func SkewClock(d time.Duration) { clockSkew.Add(int64(d)) }
