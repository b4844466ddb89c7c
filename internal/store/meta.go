package store

import (
	"encoding/binary"
	"slices"
)

// The metadata log's format 1 (record type 5) held MetaCommand values that the
// store itself understood. Warren now writes the broker's own versioned
// commands (record type 6, opaque here); these decoders remain so a data
// directory written before that change still opens: its commands are handed
// to the broker as MetaRecord.Legacy, and the first compaction rewrites them.

// appendMetaPayload encodes c as a metadata record payload.
func appendMetaPayload(b []byte, c MetaCommand) []byte {
	toEx := byte(0)
	if c.ToExchange {
		toEx = 1
	}
	b = append(b, byte(c.Op), c.Flags, toEx)
	for _, s := range []string{c.VHost, c.Name, c.Kind, c.Destination, c.Key, c.Tags} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	for _, s := range [][]byte{c.Args, c.Secret} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

// decodeMetaPayload decodes a metadata record payload; it never reads or
// allocates beyond what p holds.
func decodeMetaPayload(p []byte) (MetaCommand, error) {
	var c MetaCommand
	if len(p) < 3 || p[2] > 1 || p[0] == 0 {
		return c, errCorrupt
	}
	c.Op, c.Flags, c.ToExchange = MetaOp(p[0]), p[1], p[2] == 1
	p = p[3:]
	field := func() ([]byte, bool) {
		n, k := binary.Uvarint(p)
		if k <= 0 || n > uint64(len(p)-k) {
			return nil, false
		}
		f := p[k : k+int(n)]
		p = p[k+int(n):]
		return f, true
	}
	strs := []*string{&c.VHost, &c.Name, &c.Kind, &c.Destination, &c.Key, &c.Tags}
	for _, s := range strs {
		f, ok := field()
		if !ok {
			return c, errCorrupt
		}
		*s = string(f)
	}
	for _, s := range []*[]byte{&c.Args, &c.Secret} {
		f, ok := field()
		if !ok {
			return c, errCorrupt
		}
		if len(f) > 0 {
			*s = slices.Clone(f)
		}
	}
	if len(p) != 0 {
		return c, errCorrupt
	}
	return c, nil
}
