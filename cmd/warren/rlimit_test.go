package main

import "testing"

func TestRlimitConnectionsForFileLimit(t *testing.T) {
	for files, want := range map[uint64]int{
		0:       0,   // unknown: no limit
		1 << 40: 0,   // effectively unlimited
		32:      1,   // smaller than the reserve
		256:     192, // at least 64 kept
		1024:    896, // an eighth kept
		1 << 20: 917504,
	} {
		if got := connectionsFor(files); got != want {
			t.Errorf("connectionsFor(%d) = %d, want %d", files, got, want)
		}
	}
}
