package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// reporter prints one line per interval and a summary, as text or JSON lines.
// It runs on the goroutine that drives the run; producers and consumers only
// bump atomic counters and histograms, which it drains.
type reporter struct {
	out     io.Writer
	json    bool
	confirm bool
	returns bool
	events  *events

	producers []*producer
	consumers []*consumer

	start, last time.Time
	lastTotals  counters
	// Interval and whole-run histograms; reused, they are large.
	ivCons, ivConf, allCons, allConf histSnapshot
}

type counters struct {
	sent, confirmed, nacked, returned, received int64
}

func newReporter(out io.Writer, cfg *config) *reporter {
	return &reporter{out: out, json: cfg.json, confirm: cfg.confirm > 0, returns: cfg.mandatory, events: cfg.events}
}

// begin starts the clock once every connection is set up.
func (r *reporter) begin(producers []*producer, consumers []*consumer) {
	r.producers, r.consumers = producers, consumers
	r.start = time.Now()
	r.last = r.start
}

func (r *reporter) totals() counters {
	var t counters
	for _, p := range r.producers {
		t.sent += p.sent.Load()
		t.confirmed += p.confirmed.Load()
		t.nacked += p.nacked.Load()
		t.returned += p.returned.Load()
	}
	for _, k := range r.consumers {
		t.received += k.received.Load()
	}
	return t
}

// collect drains the histograms into the interval snapshots and adds them to the run's.
func (r *reporter) collect() {
	r.ivCons.reset()
	r.ivConf.reset()
	for _, k := range r.consumers {
		k.hist.drainInto(&r.ivCons)
	}
	for _, p := range r.producers {
		p.hist.drainInto(&r.ivConf)
	}
	r.allCons.add(&r.ivCons)
	r.allConf.add(&r.ivConf)
}

// tick prints the interval that ends now.
func (r *reporter) tick(now time.Time) {
	t := r.totals()
	r.collect()
	secs := now.Sub(r.last).Seconds()
	d := counters{
		sent: t.sent - r.lastTotals.sent, confirmed: t.confirmed - r.lastTotals.confirmed,
		nacked: t.nacked - r.lastTotals.nacked, returned: t.returned - r.lastTotals.returned,
		received: t.received - r.lastTotals.received,
	}
	r.last, r.lastTotals = now, t
	rate := func(n int64) float64 {
		if secs <= 0 {
			return 0
		}
		return float64(n) / secs
	}
	elapsed := now.Sub(r.start).Seconds()
	if r.json {
		line := intervalJSON{
			Time: round3(elapsed), Sent: round0(rate(d.sent)), Received: round0(rate(d.received)),
			ConsumerLatency: latencyJSON(r.ivCons.summary()),
		}
		if r.confirm {
			line.Confirmed, line.Nacked = ptr(round0(rate(d.confirmed))), ptr(round0(rate(d.nacked)))
			line.ConfirmLatency = ptr(latencyJSON(r.ivConf.summary()))
		}
		if r.returns {
			line.Returned = ptr(round0(rate(d.returned)))
		}
		r.writeJSON(line)
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "time: %.3fs, sent: %.0f msg/s, received: %.0f msg/s, consumer latency min/median/75th/95th/99th: %s µs",
		elapsed, rate(d.sent), rate(d.received), latencyText(r.ivCons.summary(), false))
	if r.confirm {
		fmt.Fprintf(&b, ", confirmed: %.0f msg/s, nacked: %.0f msg/s, confirm latency min/median/75th/95th/99th: %s µs",
			rate(d.confirmed), rate(d.nacked), latencyText(r.ivConf.summary(), false))
	}
	if r.returns {
		fmt.Fprintf(&b, ", returned: %.0f msg/s", rate(d.returned))
	}
	fmt.Fprintln(r.out, b.String())
}

// finish prints the last (partial) interval and the summary, and returns the totals.
func (r *reporter) finish(end time.Time) result {
	if end.Sub(r.last) >= 100*time.Millisecond {
		r.tick(end)
	} else {
		r.collect()
	}
	t := r.totals()
	elapsed := end.Sub(r.start)
	res := result{sent: t.sent, confirmed: t.confirmed, nacked: t.nacked, returned: t.returned, received: t.received, elapsed: elapsed}
	secs := elapsed.Seconds()
	avg := func(n int64) float64 {
		if secs <= 0 {
			return 0
		}
		return float64(n) / secs
	}
	blocked := r.events.blocked.Load()
	if r.json {
		s := summaryJSON{
			Duration: round3(secs), Sent: t.sent, Received: t.received,
			SendRate: round0(avg(t.sent)), ReceiveRate: round0(avg(t.received)),
			ConsumerLatency: latencyJSON(r.allCons.summary()), BlockedEvents: blocked,
		}
		if r.confirm {
			s.Confirmed, s.Nacked = ptr(t.confirmed), ptr(t.nacked)
			s.ConfirmLatency = ptr(latencyJSON(r.allConf.summary()))
		}
		if r.returns {
			s.Returned = ptr(t.returned)
		}
		r.writeJSON(struct {
			Summary summaryJSON `json:"summary"`
		}{s})
		return res
	}
	fmt.Fprintf(r.out, "summary: duration: %.3fs, sent: %d msg, received: %d msg, sending rate avg: %.0f msg/s, receiving rate avg: %.0f msg/s\n",
		secs, t.sent, t.received, avg(t.sent), avg(t.received))
	fmt.Fprintf(r.out, "summary: consumer latency min/median/75th/95th/99th/max: %s µs (%d samples)\n",
		latencyText(r.allCons.summary(), true), r.allCons.count())
	if r.confirm {
		fmt.Fprintf(r.out, "summary: confirmed: %d msg, nacked: %d msg, confirm latency min/median/75th/95th/99th/max: %s µs\n",
			t.confirmed, t.nacked, latencyText(r.allConf.summary(), true))
	}
	if r.returns {
		fmt.Fprintf(r.out, "summary: returned: %d msg\n", t.returned)
	}
	if blocked > 0 {
		fmt.Fprintf(r.out, "summary: the broker blocked publishing connections %d times (connection.blocked)\n", blocked)
	}
	return res
}

func (r *reporter) writeJSON(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only fixed struct types are marshalled
	}
	b = append(b, '\n')
	_, _ = r.out.Write(b)
}

// latencyText formats nanoseconds as whole microseconds: min/p50/p75/p95/p99[/max].
func latencyText(s latencySummary, withMax bool) string {
	us := func(ns uint64) string { return fmt.Sprintf("%.0f", float64(ns)/1e3) }
	t := us(s.Min) + "/" + us(s.P50) + "/" + us(s.P75) + "/" + us(s.P95) + "/" + us(s.P99)
	if withMax {
		t += "/" + us(s.Max)
	}
	return t
}

// JSON shapes: one object per interval, then {"summary": {...}}. Rates are
// msg/s, latencies microseconds.
type latencyUS struct {
	Count uint64  `json:"count"`
	Min   float64 `json:"min"`
	P50   float64 `json:"p50"`
	P75   float64 `json:"p75"`
	P95   float64 `json:"p95"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

func latencyJSON(s latencySummary) latencyUS {
	us := func(ns uint64) float64 { return round3(float64(ns) / 1e3) }
	return latencyUS{Count: s.Count, Min: us(s.Min), P50: us(s.P50), P75: us(s.P75), P95: us(s.P95), P99: us(s.P99), Max: us(s.Max)}
}

type intervalJSON struct {
	Time            float64    `json:"time"`
	Sent            float64    `json:"sent"`
	Received        float64    `json:"received"`
	Confirmed       *float64   `json:"confirmed,omitempty"`
	Nacked          *float64   `json:"nacked,omitempty"`
	Returned        *float64   `json:"returned,omitempty"`
	ConsumerLatency latencyUS  `json:"consumer_latency_us"`
	ConfirmLatency  *latencyUS `json:"confirm_latency_us,omitempty"`
}

type summaryJSON struct {
	Duration        float64    `json:"duration"`
	Sent            int64      `json:"sent_total"`
	Received        int64      `json:"received_total"`
	Confirmed       *int64     `json:"confirmed_total,omitempty"`
	Nacked          *int64     `json:"nacked_total,omitempty"`
	Returned        *int64     `json:"returned_total,omitempty"`
	SendRate        float64    `json:"send_rate"`
	ReceiveRate     float64    `json:"receive_rate"`
	ConsumerLatency latencyUS  `json:"consumer_latency_us"`
	ConfirmLatency  *latencyUS `json:"confirm_latency_us,omitempty"`
	BlockedEvents   int64      `json:"blocked_events"`
}

func ptr[T any](v T) *T { return &v }

func round0(v float64) float64 { return math.Round(v) }
func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
