package kafkaserver

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/recordbatch"
	"github.com/warren-mq/warren/internal/streamlog"
)

// ListOffsets: earliest (-2) is the log start, latest (-1) the high
// watermark (the last stable offset for read_committed), a timestamp the
// first record whose timestamp is at or after it (OffsetForTime finds the
// batch, its records give the exact offset), or -1 when none is. Versions
// up to 6: 7 adds the max-timestamp query (-3), which needs a scan the
// index does not make cheap.

func init() {
	registerVersions(kmsg.ListOffsets, 0, 6, handleListOffsets)
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

// listOffset answers one partition's query: offset, timestamp, error code.
func listOffset(l *streamlog.Log, ts int64, committed bool) (int64, int64, int16) {
	switch ts {
	case -2:
		return l.StartOffset(), -1, 0
	case -1:
		if committed {
			return l.LastStableOffset(), -1, 0
		}
		return l.NextOffset(), -1, 0
	}
	if ts < 0 {
		return -1, -1, kerr.InvalidRequest.Code
	}
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
