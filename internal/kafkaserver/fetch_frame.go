package kafkaserver

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// A fetch answer is written around the record batches rather than with
// them: kmsg encodes the response with a placeholder in each partition's
// records field, and the writer sends the encoding up to a placeholder, the
// real length, the batches straight from the segment file (sendfile on
// plain TCP), and so on. The placeholder is 16 random bytes, found in order
// after the fields before it; the fixed-width and length-prefixed fields
// kmsg writes around it cannot hold it by chance in any realistic sense
// (2^-128 per position).

const placeholderLen = 16

// fetchAnswer is a Fetch response whose partitions' records are in data,
// in encoding order.
type fetchAnswer struct {
	*kmsg.FetchResponse
	placeholder [placeholderLen]byte
	data        []fetchData
}

// answer turns the fetch into its response.
func (f *fetch) answer() kmsg.Response {
	a := &fetchAnswer{FetchResponse: f.resp}
	binary.LittleEndian.PutUint64(a.placeholder[:], rand.Uint64())
	binary.LittleEndian.PutUint64(a.placeholder[8:], rand.Uint64())
	for _, p := range f.parts {
		if p.data.len() > 0 {
			p.resp.RecordBatches = a.placeholder[:]
			a.data = append(a.data, p.data)
			p.data = fetchData{}
		}
	}
	if len(a.data) == 0 {
		return f.resp
	}
	return a
}

func (a *fetchAnswer) release() {
	for i := range a.data {
		a.data[i].release()
	}
}

var errPlaceholder = errors.New("kafkaserver: fetch placeholder not found")

// write sends the answer's frame for correlation id corr through w, and the
// chunks straight to the connection.
func (a *fetchAnswer) write(c *conn, w *bufio.Writer, corr int32) error {
	enc := appendResponse(nil, corr, a.FetchResponse)
	flexible := a.IsFlexible()
	oldPrefix := 4
	if flexible {
		oldPrefix = 1 // uvarint(17)
	}
	// Find each placeholder and the start of its length prefix.
	at := make([]int, len(a.data))
	pos := 0
	size := len(enc) - 4
	for i, d := range a.data {
		j := bytes.Index(enc[pos:], a.placeholder[:])
		if j < 0 {
			return errPlaceholder
		}
		at[i] = pos + j - oldPrefix
		pos += j + placeholderLen
		size += -oldPrefix - placeholderLen + len(lengthPrefix(nil, d.len(), flexible)) + d.len()
	}
	binary.BigEndian.PutUint32(enc, uint32(size))
	pos = 0
	var prefix [binary.MaxVarintLen64]byte
	for i, d := range a.data {
		if _, err := w.Write(enc[pos:at[i]]); err != nil {
			return err
		}
		if _, err := w.Write(lengthPrefix(prefix[:0], d.len(), flexible)); err != nil {
			return err
		}
		if err := d.writeTo(c, w); err != nil {
			return err
		}
		pos = at[i] + oldPrefix + placeholderLen
	}
	_, err := w.Write(enc[pos:])
	return err
}

// lengthPrefix is the length of a records field of n bytes: int32, or for
// flexible versions the compact form (n+1 as uvarint).
func lengthPrefix(dst []byte, n int, flexible bool) []byte {
	if flexible {
		return binary.AppendUvarint(dst, uint64(n)+1)
	}
	return binary.BigEndian.AppendUint32(dst, uint32(n))
}

// writeTo sends the records: bytes through the buffer, a chunk straight to
// the socket after flushing what is buffered before it.
func (d fetchData) writeTo(c *conn, w *bufio.Writer) error {
	if d.chunk == nil {
		_, err := w.Write(d.bytes)
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	n, err := d.chunk.WriteTo(c.nc)
	c.sendBytes.Add(uint64(n))
	if err == nil && n != int64(d.chunk.Len()) {
		err = errors.New("kafkaserver: short chunk write")
	}
	return err
}
