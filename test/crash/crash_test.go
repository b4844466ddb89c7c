// Package crash checks Warren's durability promise against the real binary
// killed with SIGKILL at random moments: a confirmed persistent message in a
// durable queue is never lost; a message delivered but not acknowledged
// before the crash comes back; acknowledged messages are not delivered again,
// except as duplicates flagged redelivered.
//
// What a kill -9 can and cannot lose follows from internal/store: one syncer
// goroutine writes appends, acks and delivery marks in group-commit rounds and
// sends a round's confirms only after its writes (and, with --sync always, its
// fdatasync). Acks and marks are not synced on their own, and AMQP acks are
// not confirmed, so an ack or a mark the clients cannot prove was written may
// be lost: such a message may come back, even with redelivered=false. The
// clients prove it with fences: a consumer channel in confirm mode does a
// basic.qos round trip and publishes a persistent message to its own queue;
// once that is confirmed, every ack and every delivery before it on that
// channel was in the same round or an earlier one (see copyState). The test
// asserts exactly that and no more.
//
// Set WARREN_CRASH_SEED to repeat a run's kill times and ack choices,
// WARREN_CRASH_ROUNDS for more kills than 5 (a longer hunt),
// WARREN_CRASH_SYNC for another --sync mode than always, and
// WARREN_CRASH_DIR to keep the data directory (and the broker logs in
// WARREN_CRASH_DIR.logs) for a post-mortem; with WARREN_CRASH_SNAPSHOTS=1 as
// well, a copy of the data directory as every kill left it is kept beside it.
package crash

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"
)

func seed(t *testing.T) uint64 {
	t.Helper()
	if s := os.Getenv("WARREN_CRASH_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("WARREN_CRASH_SEED: %v", err)
		}
		return v
	}
	return uint64(time.Now().UnixNano())
}

// dataDir is a fresh temporary directory, or WARREN_CRASH_DIR (emptied
// first) to keep the store after the test.
func dataDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("WARREN_CRASH_DIR")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("data directory kept in %s", dir)
	return dir
}

func TestCrashKill9KeepsConfirmedMessages(t *testing.T) { crashTest(t, churn, 0) }

// TestCrashKill9BacklogOnDisk is the same hunt with a memory limit far below
// what the queues hold: the unconsumed queues' backlogs live on disk (the
// store's queue tails, read back into a small window as they drain), so kills
// land while tails are written, read back, acknowledged and compacted.
func TestCrashKill9BacklogOnDisk(t *testing.T) { crashTest(t, hoard, backlogLimit) }

// backlogLimit is the memory limit of TestCrashKill9BacklogOnDisk, in bytes.
const backlogLimit = 16 << 20

// crashTest runs the kill hunt with load sh; memLimit > 0 starts the broker
// with that --memory-limit and checks the backlog outgrew it.
func crashTest(t *testing.T, sh shape, memLimit int) {
	if testing.Short() {
		t.Skip("builds and kills the broker binary; skipped with -short")
	}
	s := seed(t)
	t.Logf("seed %d (WARREN_CRASH_SEED=%d repeats the kill times and ack choices)", s, s)
	rng := rand.New(rand.NewPCG(s, 0))
	// A kill -9 keeps what the process wrote (the page cache survives it), so
	// the promise holds for every --sync mode; always is the default and
	// the one tested unless WARREN_CRASH_SYNC says otherwise.
	syncMode := cmp.Or(os.Getenv("WARREN_CRASH_SYNC"), "always")
	t.Logf("--sync %s", syncMode)
	flags := []string{"--sync", syncMode, "--log-level", "debug"}
	if memLimit > 0 {
		// Small segments, so that kills also land while segments are
		// sealed (summaries written), deleted and compacted.
		flags = append(flags, "--memory-limit", strconv.Itoa(memLimit), "--segment-size", "4MiB")
	}
	w := newWarren(t, buildWarren(t), dataDir(t), flags...)
	l := newLedger()

	rounds := 5
	if v, err := strconv.Atoi(os.Getenv("WARREN_CRASH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	snapshots := os.Getenv("WARREN_CRASH_DIR") != "" && os.Getenv("WARREN_CRASH_SNAPSHOTS") == "1"
	for run := 1; run <= rounds && !t.Failed(); run++ {
		if snapshots && run > 1 {
			w.snapshot(fmt.Sprintf("before-run-%02d", run))
		}
		crashRound(t, w, l, run, rng, sh)
	}
	finalCheck(t, w, l, rounds+1, s, memLimit)
}

// crashRound is one run of the broker: sometimes a kill during recovery
// first, then load for a random time and a kill (now and then a clean
// shutdown cut short).
func crashRound(t *testing.T, w *warren, l *ledger, run int, rng *rand.Rand, sh shape) {
	if run > 1 && rng.IntN(3) == 0 {
		// Kill while it recovers the previous run's data (or just after):
		// recovery must be crash-safe too.
		d := time.Duration(rng.Int64N(int64(w.ready) + int64(20*time.Millisecond)))
		w.killDuringStartup(d)
		t.Logf("run %d: killed %v after start, during recovery", run, d.Round(time.Millisecond))
	}
	w.start()
	declareTopology(t, w.URL(), run > 1)
	before := l.snapshot()
	ld, err := startLoad(w.URL(), l, run, rng.Uint64(), sh)
	if err != nil {
		t.Fatalf("run %d: %v", run, err)
	}
	dur := sh.runMin + time.Duration(rng.Int64N(int64(sh.runMax-sh.runMin)))
	time.Sleep(dur) // the load runs for a random time; this is the kill moment, not synchronisation
	ld.killed.Store(true)
	how := "SIGKILL"
	if rng.IntN(5) == 0 {
		// A clean shutdown, cut short by SIGKILL after up to 50ms (it may
		// finish first).
		how = "SIGTERM, finished"
		if w.termThenKill(time.Duration(rng.IntN(50_000)) * time.Microsecond) {
			how = "SIGTERM, then SIGKILL"
		}
	} else {
		w.kill()
	}
	ld.wait(t)
	for _, e := range ld.errs {
		t.Errorf("run %d: client error while the broker was up: %s", run, e)
	}
	c := l.snapshot()
	ua, um := l.uncovered(run)
	t.Logf("run %d: ready after %v, %s after %v of load: published %d, confirmed %d, deliveries %d (%d repeats), acks %d; not proved durable at the kill: %d acks, %d delivery marks",
		run, w.ready.Round(time.Millisecond), how, dur, c.published-before.published, c.confirmed-before.confirmed,
		c.deliveries-before.deliveries, c.repeats()-before.repeats(), c.acks-before.acks, ua, um)
}

// finalCheck restarts the broker, drains every queue as run final and
// checks the promise over all runs; then the logs.
func finalCheck(t *testing.T, w *warren, l *ledger, final int, seed uint64, memLimit int) {
	w.start()
	depths := queueDepths(t, w.URL())
	t.Logf("final restart: ready after %v, queue depths %v", w.ready.Round(time.Millisecond), depths)
	if memLimit > 0 {
		// A queue must have outgrown twice the broker's in-memory window
		// (4096 messages) for its tail to have been written and read back,
		// and held in memory as before queue tails (450-550 bytes each) the
		// backlog would not fit under the limit.
		total := depths[0] + depths[1] + depths[2]
		t.Logf("backlog %d messages: about %d MiB held in memory without queue tails, memory limit %d MiB", total, total*450>>20, memLimit>>20)
		if slices.Max(depths) <= 2*4096 {
			t.Errorf("no queue outgrew the in-memory window (depths %v): the disk tails were not tested", depths)
		}
	}
	drained := drain(t, w.URL(), l, final)
	w.stop()
	if memLimit > 0 {
		// At a limit this small the Go runtime's own footprint is most of
		// the RSS, so the bound is 4x the limit rather than the 1.5x that
		// test/limits holds at 64 MiB; what it catches is memory growing
		// with the backlog (recovery once held a read buffer per segment).
		t.Logf("highest peak RSS of any run: %d MiB (memory limit %d MiB)", w.peak>>20, memLimit>>20)
		if w.peak > 4*uint64(memLimit) {
			t.Errorf("a run's peak RSS was %d MiB, over 4 times the %d MiB memory limit", w.peak>>20, memLimit>>20)
		}
	}
	// A clean restart after the drain: its automatic acks were durable.
	w.start()
	if d := queueDepths(t, w.URL()); d[0]+d[1]+d[2] != 0 {
		t.Errorf("after draining and a clean restart the queues hold %v messages", d)
	}
	w.stop()
	w.checkLogs()

	lost, survived, gone := l.checkFinal(final)
	c := l.snapshot()
	t.Logf("totals: published %d, confirmed %d, unconfirmed %d (of whose copies %d survived, %d did not); deliveries %d, acks %d; drained %d (fences included)",
		c.published, c.confirmed, c.unconfirmed, survived, gone, c.deliveries, c.acks, drained)
	t.Logf("duplicates after a kill: unacked copies delivered again %d (redelivered=true %d, false %d); acked copies delivered again %d (true %d, false %d); first deliveries flagged redelivered %d",
		c.repeatsTrue+c.repeatsFalse, c.repeatsTrue, c.repeatsFalse,
		c.ackedRepeatsTrue+c.ackedRepeatsFalse, c.ackedRepeatsTrue, c.ackedRepeatsFalse, c.firstTrue)
	t.Logf("proved durable by confirmed fences: %d acks, %d delivery marks", c.coveredAcks, c.coveredMarks)
	for i, k := range lost {
		if i == 20 {
			break
		}
		t.Errorf("LOST: confirmed, never acked, not delivered after the final restart: %s", l.describe(k))
	}
	if len(lost) > 0 {
		t.Errorf("%d confirmed copies lost (seed %d)", len(lost), seed)
	}
	l.report(t)
	if c.confirmed == 0 || c.deliveries == 0 {
		t.Errorf("the load did nothing: %+v", c)
	}
}
