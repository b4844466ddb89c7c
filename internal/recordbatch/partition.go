package recordbatch

import "encoding/binary"

// Partition is Kafka's default partitioner for a keyed record:
// toPositive(murmur2(key)) % n, so an AMQP publish to a super stream and a
// Kafka producer with the same key pick the same partition. Kafka sends
// records with a null key to a sticky partition instead; callers that want
// that must handle nil themselves (Partition hashes nil as the empty key).
// n must be positive.
func Partition(key []byte, n int) int {
	return int(uint32(Murmur2(key))&0x7fffffff) % n
}

// Murmur2 is the 32-bit MurmurHash2 variant of Kafka's Utils.murmur2: seed
// 0x9747b28c, little-endian 4-byte words, the signed result Java returns.
func Murmur2(data []byte) int32 {
	const (
		seed = 0x9747b28c
		m    = 0x5bd1e995
		r    = 24
	)
	h := uint32(seed) ^ uint32(len(data))
	p := data
	for ; len(p) >= 4; p = p[4:] {
		k := binary.LittleEndian.Uint32(p)
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch len(p) {
	case 3:
		h ^= uint32(p[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(p[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(p[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}
