package mgmt

import (
	"strconv"
	"time"
)

// The node's sample history, for charts: RabbitMQ's overview takes
// lengths_age/lengths_incr (queued message counts) and
// msg_rates_age/msg_rates_incr (message counters) in seconds and adds to each
// *_details the samples at every incr over the last age, newest first, with
// their average and average rate. Only the node's totals keep a history
// (an hour of 5 s samples); per-object details have the rate alone.

const historyLen = 720

// record appends the node's sample to the history, under sm.mu.
func (sm *sampler) recordLocked(s sample) {
	if len(sm.hist) == historyLen {
		copy(sm.hist, sm.hist[1:])
		sm.hist = sm.hist[:historyLen-1]
	}
	sm.hist = append(sm.hist, s)
}

// window reads age and incr (seconds) from the query; ok is false when absent.
func window(r *req, ageKey, incrKey string) (age, incr int64, ok bool) {
	q := r.URL.Query()
	age, err1 := strconv.ParseInt(q.Get(ageKey), 10, 64)
	incr, err2 := strconv.ParseInt(q.Get(incrKey), 10, 64)
	if err1 != nil || err2 != nil || age <= 0 || incr <= 0 || age/incr > 10000 {
		return 0, 0, false
	}
	return age, incr, true
}

// addSamples adds samples, avg and avg_rate of counter c to a details object.
func (sm *sampler) addSamples(d obj, c counter, age, incr int64, now time.Time) {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	step := incr * 1000
	newest := now.UnixMilli() / step * step
	samples := []obj{}
	var sum, first, last float64
	n := 0
	for ts := newest; ts >= newest-age*1000; ts -= step {
		v := 0.0
		for i := len(sm.hist) - 1; i >= 0; i-- {
			if sm.hist[i].at.UnixMilli() <= ts {
				v = float64(sm.hist[i].c[c])
				break
			}
		}
		samples = append(samples, obj{"sample": v, "timestamp": ts})
		if n == 0 {
			last = v
		}
		first = v
		sum += v
		n++
	}
	d["samples"] = samples
	d["avg"] = sum / float64(n)
	d["avg_rate"] = 0.0
	if age > 0 && c < cMessages {
		d["avg_rate"] = (last - first) / float64(age)
	}
}

// withHistory adds the samples the query asks for to the overview's details.
func (s *Server) withHistory(r *req, o obj) {
	now := time.Now()
	if age, incr, ok := window(r, "lengths_age", "lengths_incr"); ok {
		qt := o["queue_totals"].(obj)
		for _, c := range []counter{cMessages, cMessagesReady, cMessagesUnacked} {
			s.rates.addSamples(qt[counterNames[c]+"_details"].(obj), c, age, incr, now)
		}
	}
	if age, incr, ok := window(r, "msg_rates_age", "msg_rates_incr"); ok {
		ms := o["message_stats"].(obj)
		for _, c := range channelStatNames {
			s.rates.addSamples(ms[counterNames[c]+"_details"].(obj), c, age, incr, now)
		}
	}
}
