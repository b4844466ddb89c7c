package messaging

import (
	"flag"
	"os"
	"testing"
)

// TestMain raises the default -parallel: these tests spend their time waiting
// for the broker's timers (the 3 s delay before a silent close, heartbeats,
// the handshake timeout), not on CPU, so running only GOMAXPROCS of them at a
// time would make the package slow for no benefit. An explicit -parallel wins.
func TestMain(m *testing.M) {
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		_ = flag.Set("test.parallel", "32")
	}
	os.Exit(m.Run())
}
