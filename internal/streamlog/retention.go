package streamlog

// maintain applies retention between write rounds.
func (l *Log) maintain() {}
