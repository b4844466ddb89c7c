package kafkaserver

import (
	"math"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/recordbatch"
	"github.com/warren-mq/warren/internal/streamlog"
)

// ListOffsets: earliest (-2) and earliest local (-4) are the log start,
// latest (-1) the high watermark (the last stable offset for
// read_committed), latest tiered (-5) -1 (nothing is tiered), max
// timestamp (-3) the first record carrying the log's largest timestamp
// (maxTimestampOffset), a timestamp the first record whose timestamp is at
// or after it (OffsetForTime finds the batch, its records give the exact
// offset), or -1 when none is. A timestamp answer at or past the last
// fetchable offset (the last stable offset under read_committed) is no
// answer, as Kafka's ReplicaManager has it. A special value sent below the
// version that added it, or an unknown negative one, is UNSUPPORTED_VERSION
// for that partition, as in Kafka. Versions up to 10 (10 adds a timeout for
// remote storage lookups, which Warren does not make; 11 adds -6, a tiered
// storage query).

func init() {
	registerVersions(kmsg.ListOffsets, 0, 10, handleListOffsets)
}

func handleListOffsets(c *conn, req kmsg.Request) (kmsg.Response, error) {
	r := req.(*kmsg.ListOffsetsRequest)
	resp := kmsg.NewPtrListOffsetsResponse()
	for _, rt := range r.Topics {
		t, found := c.vhost.Topic(rt.Topic)
		readable := found && c.allowed(t, broker.Read)
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			p := kmsg.NewListOffsetsResponseTopicPartition()
			p.Partition, p.Timestamp, p.Offset, p.LeaderEpoch = rp.Partition, -1, -1, 0
			switch {
			case !found:
				p.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case !readable:
				p.ErrorCode = kerr.TopicAuthorizationFailed.Code
			case rp.Partition < 0 || int(rp.Partition) >= len(t.Partitions) || t.Partitions[rp.Partition] == nil:
				p.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case !specialTimestampAllowed(rp.Timestamp, r.Version):
				p.ErrorCode = kerr.UnsupportedVersion.Code
			default:
				p.ErrorCode = leaderEpochCode(rp.CurrentLeaderEpoch)
			}
			if p.ErrorCode == 0 {
				l := t.Partitions[rp.Partition].Log()
				p.Offset, p.Timestamp, p.ErrorCode = listOffset(l, rp.Timestamp, r.IsolationLevel == 1)
				if r.Version == 0 && p.ErrorCode == 0 {
					p.OldStyleOffsets = []int64{p.Offset}
				}
			}
			st.Partitions = append(st.Partitions, p)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

// listOffsetsMinVersion is the request version each special timestamp
// needs (Kafka's ReplicaManager.timestampMinSupportedVersion).
var listOffsetsMinVersion = map[int64]int16{-1: 0, -2: 0, -3: 7, -4: 8, -5: 9}

// specialTimestampAllowed reports whether a request of version v may ask
// for ts: any timestamp from 0, a negative one from its version on.
func specialTimestampAllowed(ts int64, v int16) bool {
	if ts >= 0 {
		return true
	}
	min, ok := listOffsetsMinVersion[ts]
	return ok && v >= min
}

// listOffset answers one partition's query: offset, timestamp, error code.
func listOffset(l *streamlog.Log, ts int64, committed bool) (int64, int64, int16) {
	switch ts {
	case -2, -4:
		return l.StartOffset(), -1, 0
	case -1:
		if committed {
			return l.LastStableOffset(), -1, 0
		}
		return l.NextOffset(), -1, 0
	case -5:
		return -1, -1, 0
	}
	lastFetchable := l.NextOffset()
	if committed {
		lastFetchable = l.LastStableOffset()
	}
	var off, recTs int64
	var code int16
	if ts == -3 {
		off, recTs, code = maxTimestampOffset(l)
	} else {
		off, recTs, code = offsetForTime(l, ts)
	}
	if code != 0 || off < 0 || off >= lastFetchable {
		return -1, -1, code
	}
	return off, recTs, 0
}

// offsetForTime finds the first record at or after ts: offset and
// timestamp, -1 and -1 if there is none.
func offsetForTime(l *streamlog.Log, ts int64) (int64, int64, int16) {
	off := l.OffsetForTime(ts)
	if off >= l.NextOffset() {
		return -1, -1, 0
	}
	// The batch's newest record is at or after ts; find the first one.
	ch, err := l.Read(off, 1)
	if err != nil {
		return -1, -1, 0
	}
	defer ch.Close()
	b, err := ch.Bytes()
	if err != nil {
		return -1, -1, kerr.KafkaStorageError.Code
	}
	for len(b) > 0 {
		var it recordbatch.Iterator
		if err := it.Reset(b, 64<<20); err != nil {
			break
		}
		h := it.Header()
		var rec recordbatch.Record
		for it.Next(&rec) {
			if o := h.BaseOffset + int64(rec.OffsetDelta); o >= off && rec.TimestampMs >= ts {
				return o, rec.TimestampMs, 0
			}
		}
		if h.Size() <= 0 || h.Size() > len(b) {
			break
		}
		b = b[h.Size():]
	}
	return off, ts, 0
}

// maxTimestampOffset answers -3 (KIP-734) as Kafka does: the log's largest
// timestamp M, the first batch (oldest segment first) whose max timestamp
// reaches M, and in it the first record carrying M; -1 and -1 for an empty
// log. The log's sparse index holds max timestamps, but the log does not
// export its maximum, so M is found with OffsetForTime, which tells from
// the index whether any batch reaches a timestamp: from the last batch's
// max timestamp (a lower bound, and the answer when producers' clocks
// advance), else by bisection above it. That is at most 66 index searches,
// two in the common case, and no scan of the log.
func maxTimestampOffset(l *streamlog.Log) (int64, int64, int16) {
	next := l.NextOffset()
	if next <= l.StartOffset() {
		return -1, -1, 0
	}
	reaches := func(ts int64) bool { return l.OffsetForTime(ts) < next }
	lo, ok := lastBatchMaxTimestamp(l, next)
	if !ok || !reaches(lo) {
		if lo = math.MinInt64; !reaches(lo) {
			return -1, -1, 0
		}
	}
	// reaches(lo) holds. Commonly nothing reaches lo+1; otherwise bisect
	// up to MaxInt64 (at most 64 more index searches).
	if lo == math.MaxInt64 || !reaches(lo+1) {
		return offsetForTime(l, lo)
	}
	hi := int64(math.MaxInt64)
	if reaches(hi) {
		return offsetForTime(l, hi)
	}
	for uint64(hi)-uint64(lo) > 1 {
		mid := lo + int64((uint64(hi)-uint64(lo))/2)
		if reaches(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return offsetForTime(l, lo)
}

// lastBatchMaxTimestamp reads the max timestamp of the batch that holds
// offset next-1.
func lastBatchMaxTimestamp(l *streamlog.Log, next int64) (int64, bool) {
	ch, err := l.Read(next-1, 1)
	if err != nil {
		return 0, false
	}
	defer ch.Close()
	b, err := ch.Bytes()
	if err != nil {
		return 0, false
	}
	var last recordbatch.BatchHeader
	found := false
	for len(b) >= recordbatch.HeaderSize {
		h, err := recordbatch.PeekHeader(b)
		if err != nil || h.Size() <= 0 || h.Size() > len(b) {
			break
		}
		last, found = h, true
		b = b[h.Size():]
	}
	return last.MaxTimestamp, found
}
