package broker

// fifo is a ring buffer of entries ordered by Seq, with insertion of requeued
// entries at their original position.
type fifo struct {
	buf   []Entry
	head  int
	count int
}

func (f *fifo) at(i int) *Entry { return &f.buf[(f.head+i)&(len(f.buf)-1)] }

func (f *fifo) grow() {
	n := len(f.buf) * 2
	if n == 0 {
		n = 16
	}
	f.resize(n)
}

// resize moves the entries to a ring of n (a power of two, at least count).
func (f *fifo) resize(n int) {
	nb := make([]Entry, n)
	for i := 0; i < f.count; i++ {
		nb[i] = *f.at(i)
	}
	f.buf, f.head = nb, 0
}

func (f *fifo) push(e Entry) {
	if f.count == len(f.buf) {
		f.grow()
	}
	*f.at(f.count) = e
	f.count++
}

func (f *fifo) peek() *Entry {
	if f.count == 0 {
		return nil
	}
	return f.at(0)
}

func (f *fifo) pop() Entry {
	e := f.at(0)
	v := *e
	*e = Entry{}
	f.head = (f.head + 1) & (len(f.buf) - 1)
	f.count--
	if f.count == 0 {
		f.head = 0
	}
	if len(f.buf) > fifoShrinkMin && f.count < len(f.buf)/8 {
		f.resize(len(f.buf) / 4)
	}
	return v
}

// fifoShrinkMin is the ring size below which a fifo never shrinks: a queue
// that drained a long backlog gives the ring back, a busy short one does not
// reallocate back and forth.
const fifoShrinkMin = 4096

// insert puts a requeued entry back at its place by Seq. Requeued entries are
// usually older than everything ready, so this is a push at the front.
func (f *fifo) insert(e Entry) {
	if f.count == len(f.buf) {
		f.grow()
	}
	// Find the first position whose Seq is greater than e.Seq.
	lo, hi := 0, f.count
	for lo < hi {
		mid := (lo + hi) / 2
		if f.at(mid).Seq < e.Seq {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	// Open a gap at lo by moving the shorter side: entries before it one
	// place towards the front, or those after it one place back.
	if lo < f.count-lo {
		f.head = (f.head - 1 + len(f.buf)) & (len(f.buf) - 1)
		f.count++
		for i := 0; i < lo; i++ {
			*f.at(i) = *f.at(i + 1)
		}
	} else {
		f.count++
		for i := f.count - 1; i > lo; i-- {
			*f.at(i) = *f.at(i - 1)
		}
	}
	*f.at(lo) = e
}

// readyList holds a queue's ready entries: one fifo, or one per priority level.
type readyList struct {
	levels []fifo // index = priority; len 1 for a plain queue
	count  int
	// tails is the queue's tail per level (backlog.lv): a level whose
	// window is empty while its tail is not holds up the levels below.
	tails []tailLevel
}

func newReadyList(maxPriority int) *readyList {
	return &readyList{levels: make([]fifo, maxPriority+1)}
}

func (r *readyList) level(e *Entry) *fifo {
	p := int(e.Msg.Priority)
	if p >= len(r.levels) {
		p = len(r.levels) - 1
	}
	return &r.levels[p]
}

func (r *readyList) len() int { return r.count }

func (r *readyList) push(e Entry) { r.level(&e).push(e); r.count++ }

func (r *readyList) insert(e Entry) { r.level(&e).insert(e); r.count++ }

// head returns the fifo holding the next entry to deliver, nil if empty —
// or if the next entry by priority is in its level's tail (waiting for a
// refill), although lower levels hold entries: a priority queue never
// delivers past a higher-priority backlog on disk.
func (r *readyList) head() *fifo {
	for i := len(r.levels) - 1; i >= 0; i-- {
		if r.levels[i].count > 0 {
			return &r.levels[i]
		}
		if r.tails != nil && r.tails[i].count > 0 {
			return nil
		}
	}
	return nil
}

func (r *readyList) peek() *Entry {
	if f := r.head(); f != nil {
		return f.peek()
	}
	return nil
}

func (r *readyList) pop() Entry {
	r.count--
	return r.head().pop()
}

// popOldest removes the entry that was published first, whatever its priority
// (what x-overflow drop-head drops).
func (r *readyList) popOldest() Entry {
	best := -1
	for i := range r.levels {
		if r.levels[i].count > 0 && (best < 0 || r.levels[i].peek().Seq < r.levels[best].peek().Seq) {
			best = i
		}
	}
	r.count--
	return r.levels[best].pop()
}

// drain removes every entry, calling fn for each.
func (r *readyList) drain(fn func(Entry)) {
	for i := range r.levels {
		for r.levels[i].count > 0 {
			fn(r.levels[i].pop())
		}
	}
	r.count = 0
}
