package streamlog

// checkProducer checks an append's idempotent batch against its producer's
// state: a duplicate returns the original result and true.
func (w *writer) checkProducer(hdrs []BatchHeader) (AppendResult, bool, error) {
	return AppendResult{}, false, nil
}

// recordProducer updates the producer and transaction state for a batch
// being written (or met during recovery).
func (w *writer) recordProducer(h BatchHeader) {}

// LastStableOffset is the first offset of the earliest open transaction,
// or NextOffset() if none is open.
func (l *Log) LastStableOffset() int64 { return l.NextOffset() }

// AbortedTxns returns the aborted transactions with records in [from, to).
func (l *Log) AbortedTxns(from, to int64) []AbortedTxn { return nil }
