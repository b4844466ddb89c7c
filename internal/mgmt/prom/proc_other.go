//go:build !linux

package prom

// procStats are the process's own figures RabbitMQ reports for its node;
// outside Linux they are not read and their series are left out.
type procStats struct {
	rss, openFDs, maxFDs   float64
	rssOK, fdsOK, maxFDsOK bool
}

func readProcStats() procStats { return procStats{} }
