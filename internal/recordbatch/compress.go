package recordbatch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// bufPool holds scratch buffers for the uncompressed records of a batch being built.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

func getBuf() *[]byte { b := bufPool.Get().(*[]byte); *b = (*b)[:0]; return b }

// putBuf returns b to the pool unless it grew past what is worth keeping.
func putBuf(b *[]byte) {
	if cap(*b) <= 4<<20 {
		bufPool.Put(b)
	}
}

// appendWriter is an io.Writer appending to a slice, for the streaming encoders.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

var (
	gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}
	lz4Writers  = sync.Pool{New: func() any {
		w := lz4.NewWriter(nil)
		// 64 KiB blocks without a content checksum, as Kafka's Java client
		// writes them; every reader accepts that.
		_ = w.Apply(lz4.BlockSizeOption(lz4.Block64Kb), lz4.ChecksumOption(false))
		return w
	}}
	zstdEncoder struct {
		once sync.Once
		enc  *zstd.Encoder
	}
)

// compress appends src compressed with codec c to dst. Writing to memory
// cannot fail, so neither can compress.
func compress(dst, src []byte, c Compression, level int) []byte {
	switch c {
	case Gzip:
		w := &appendWriter{b: dst}
		var zw *gzip.Writer
		if level == 0 {
			zw = gzipWriters.Get().(*gzip.Writer)
			zw.Reset(w)
			defer gzipWriters.Put(zw)
		} else {
			var err error
			if zw, err = gzip.NewWriterLevel(w, level); err != nil {
				zw = gzip.NewWriter(w)
			}
		}
		_, _ = zw.Write(src)
		_ = zw.Close()
		return w.b
	case Snappy:
		// Raw snappy, as franz-go and librdkafka write it; Java's xerial
		// reader accepts unframed input.
		n := s2.MaxEncodedLen(len(src))
		dst = slices.Grow(dst, n)
		out := s2.EncodeSnappy(dst[len(dst):len(dst)+n], src)
		return dst[:len(dst)+len(out)]
	case LZ4:
		w := &appendWriter{b: dst}
		zw := lz4Writers.Get().(*lz4.Writer)
		zw.Reset(w)
		_, _ = zw.Write(src)
		_ = zw.Close()
		zw.Reset(nil)
		lz4Writers.Put(zw)
		return w.b
	case Zstd:
		if level != 0 {
			enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)), zstd.WithEncoderConcurrency(1))
			if err == nil {
				defer enc.Close()
				return enc.EncodeAll(src, dst)
			}
		}
		zstdEncoder.once.Do(func() {
			zstdEncoder.enc, _ = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(2))
		})
		return zstdEncoder.enc.EncodeAll(src, dst)
	}
	return append(dst, src...)
}

// Decoders are pooled: building one costs more than decoding a small batch.
var (
	gzipReaders = sync.Pool{}
	lz4Readers  = sync.Pool{New: func() any { return lz4.NewReader(nil) }}
	zstdReaders = sync.Pool{New: func() any {
		// One decoder per goroutine, synchronous (no goroutines of its own, so
		// a pooled decoder dropped by the GC leaks nothing); the window bound
		// keeps a hostile frame from claiming a large history buffer.
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			panic(err) // only bad options fail, and these are constant
		}
		return d
	}}
)

// gzipReader is a pooled gzip decoder with the reader it decodes from.
type gzipReader struct {
	zr  *gzip.Reader
	src bytes.Reader
}

// zstdMaxWindow bounds a zstd frame's window. Producers write batches of at
// most a few MiB (message.max.bytes), whose window is never larger.
const zstdMaxWindow = 8 << 20

// xerialMagic starts the framing Java's snappy-java SnappyOutputStream writes:
// magic, then int32 version and minimum compatible version, then chunks of
// int32 length + raw snappy block.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

const xerialHeaderSize = 16

// decompress appends the records of codec c in src to dst, writing at most
// limit bytes; more is ErrTooLarge and nothing beyond dst's growth to limit
// bytes is allocated for the output.
func decompress(dst, src []byte, c Compression, limit int) ([]byte, error) {
	switch c {
	case None:
		if len(src) > limit {
			return dst, ErrTooLarge
		}
		return append(dst, src...), nil
	case Gzip:
		g, _ := gzipReaders.Get().(*gzipReader)
		if g == nil {
			g = new(gzipReader)
		}
		g.src.Reset(src)
		var err error
		if g.zr == nil {
			g.zr, err = gzip.NewReader(&g.src)
		} else {
			err = g.zr.Reset(&g.src)
		}
		if err == nil {
			dst, err = readLimited(g.zr, dst, limit, len(src), c)
		} else {
			err = corrupt(c, err)
		}
		g.src.Reset(nil) // the pool must not keep the batch alive
		if g.zr != nil {
			gzipReaders.Put(g)
		}
		return dst, err
	case Snappy:
		if bytes.HasPrefix(src, xerialMagic) {
			return unxerial(dst, src, limit)
		}
		return unsnappy(dst, src, limit)
	case LZ4:
		zr := lz4Readers.Get().(*lz4.Reader)
		zr.Reset(bytes.NewReader(src))
		dst, err := readLimited(zr, dst, limit, len(src), c)
		zr.Reset(nil)
		lz4Readers.Put(zr)
		return dst, err
	case Zstd:
		zr := zstdReaders.Get().(*zstd.Decoder)
		if err := zr.Reset(bytes.NewReader(src)); err != nil {
			zstdReaders.Put(zr)
			return dst, corrupt(c, err)
		}
		dst, err := readLimited(zr, dst, limit, len(src), c)
		_ = zr.Reset(nil)
		zstdReaders.Put(zr)
		return dst, err
	}
	return dst, fmt.Errorf("%w %d", ErrCompression, int8(c))
}

func corrupt(c Compression, err error) error {
	return fmt.Errorf("%w: %s: %v", ErrCorrupt, c, err)
}

// unsnappy decodes one raw snappy block; its length prefix is checked
// against the limit before anything is allocated.
func unsnappy(dst, src []byte, limit int) ([]byte, error) {
	n, err := s2.DecodedLen(src)
	if err != nil {
		return dst, corrupt(Snappy, err)
	}
	if n > limit {
		return dst, ErrTooLarge
	}
	dst = slices.Grow(dst, n)
	out, err := s2.Decode(dst[len(dst):len(dst)+n], src)
	if err != nil {
		return dst, corrupt(Snappy, err)
	}
	return dst[:len(dst)+len(out)], nil
}

// unxerial decodes xerial-framed snappy chunk by chunk, each checked against
// what is left of the limit.
func unxerial(dst, src []byte, limit int) ([]byte, error) {
	if len(src) < xerialHeaderSize {
		return dst, corrupt(Snappy, errors.New("short xerial header"))
	}
	start := len(dst)
	for p := src[xerialHeaderSize:]; len(p) > 0; {
		if len(p) < 4 {
			return dst, corrupt(Snappy, errors.New("short xerial chunk length"))
		}
		n := binary.BigEndian.Uint32(p)
		p = p[4:]
		if uint64(n) > uint64(len(p)) {
			return dst, corrupt(Snappy, errors.New("xerial chunk overruns the batch"))
		}
		var err error
		if dst, err = unsnappy(dst, p[:n], limit-(len(dst)-start)); err != nil {
			return dst, err
		}
		p = p[n:]
	}
	return dst, nil
}

// readLimited appends everything r yields to dst, at most limit bytes:
// one byte more is ErrTooLarge. The output grows by doubling from a guess
// based on the compressed size, never past the limit.
func readLimited(r io.Reader, dst []byte, limit, srcLen int, c Compression) ([]byte, error) {
	start := len(dst)
	next := min(limit, max(4<<10, 4*srcLen))
	for {
		if len(dst)-start >= limit {
			var one [1]byte
			for {
				n, err := r.Read(one[:])
				if n > 0 {
					return dst, ErrTooLarge
				}
				if err == io.EOF {
					return dst, nil
				}
				if err != nil {
					return dst, corrupt(c, err)
				}
			}
		}
		if len(dst) == cap(dst) {
			dst = slices.Grow(dst, min(next, limit-(len(dst)-start)))
			next *= 2
		}
		end := min(cap(dst), start+limit)
		n, err := r.Read(dst[len(dst):end])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, corrupt(c, err)
		}
	}
}
