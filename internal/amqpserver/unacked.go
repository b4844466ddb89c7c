package amqpserver

import (
	"sort"

	"github.com/warren-mq/warren/internal/broker"
)

// unackedRec is one delivered, unacknowledged message of a channel.
type unackedRec struct {
	tag   uint64
	queue broker.Source
	entry broker.Entry
	cs    *consumerState // nil for basic.get
	// seen is when (unix ms) the first acknowledgement-timeout check after
	// the delivery saw the record, 0 before: the delivery itself reads no
	// clock (see acktimeout.go).
	seen int64
}

// unackedList holds a channel's unacknowledged deliveries in tag order. Tags
// only grow, so it is a slice searched by binary search; settled records in the
// middle become tombstones (queue == nil) until the front catches up.
type unackedList struct {
	recs []unackedRec
	head int
	live int
}

func (l *unackedList) push(r unackedRec) {
	l.recs = append(l.recs, r)
	l.live++
}

func (l *unackedList) len() int { return l.live }

// take removes the record with tag (or, with multiple, every record up to and
// including tag; tag 0 with multiple means all) and appends them to dst in tag
// order. ok is false when tag is unknown.
func (l *unackedList) take(dst []unackedRec, tag uint64, multiple bool) ([]unackedRec, bool) {
	recs := l.recs[l.head:]
	if multiple {
		if tag == 0 {
			return l.takeAll(dst), true
		}
		// As in RabbitMQ, the tag itself must be outstanding.
		n := sort.Search(len(recs), func(i int) bool { return recs[i].tag > tag })
		if n == 0 || recs[n-1].tag != tag || recs[n-1].queue == nil {
			return dst, false
		}
		for i := 0; i < n; i++ {
			if recs[i].queue != nil {
				dst = append(dst, recs[i])
				recs[i] = unackedRec{tag: recs[i].tag} // tombstones keep their tag for the search
				l.live--
			}
		}
		l.compact()
		return dst, true
	}
	i := sort.Search(len(recs), func(i int) bool { return recs[i].tag >= tag })
	if i == len(recs) || recs[i].tag != tag || recs[i].queue == nil {
		return dst, false
	}
	dst = append(dst, recs[i])
	recs[i] = unackedRec{tag: tag}
	l.live--
	l.compact()
	return dst, true
}

// takeAll removes every record.
func (l *unackedList) takeAll(dst []unackedRec) []unackedRec {
	for _, r := range l.recs[l.head:] {
		if r.queue != nil {
			dst = append(dst, r)
		}
	}
	l.recs, l.head, l.live = l.recs[:0], 0, 0
	return dst
}

// restore puts records taken by a rolled-back transaction back in tag order.
func (l *unackedList) restore(rs []unackedRec) {
	for _, r := range rs {
		recs := l.recs[l.head:]
		i := sort.Search(len(recs), func(i int) bool { return recs[i].tag >= r.tag })
		if i < len(recs) && recs[i].tag == r.tag {
			recs[i] = r
		} else {
			l.recs = append(l.recs, unackedRec{})
			recs = l.recs[l.head:]
			copy(recs[i+1:], recs[i:])
			recs[i] = r
		}
		l.live++
	}
}

// compact drops settled records from the front and, when tombstones dominate,
// from the middle.
func (l *unackedList) compact() {
	for l.head < len(l.recs) && l.recs[l.head].queue == nil {
		l.head++
	}
	if l.head == len(l.recs) {
		l.recs, l.head = l.recs[:0], 0
		return
	}
	if n := len(l.recs) - l.head; n > 64 && l.live < n/4 {
		out := l.recs[:0]
		for _, r := range l.recs[l.head:] {
			if r.queue != nil {
				out = append(out, r)
			}
		}
		clear(l.recs[len(out):])
		l.recs, l.head = out, 0
	} else if l.head > 32 && l.head > len(l.recs)/2 {
		// Settled records at the head go once they are half: the copy
		// moves at most as many live ones, and the slice stays about twice
		// the channel's prefetch (with a dead head of up to 1,024, each of
		// 2,000 consumers' channels held 160 KiB).
		n := copy(l.recs, l.recs[l.head:])
		clear(l.recs[n:])
		l.recs, l.head = l.recs[:n], 0
	}
}
