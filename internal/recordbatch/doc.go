// Package recordbatch holds what Kafka puts inside a stream: record batches
// v2 (building, decoding, compression), Kafka's default partitioner, and the
// mapping between AMQP messages and records. It is a leaf and the only
// implementation of the format: the log (internal/streamlog) checks, patches
// (SetBaseOffset) and compacts batches with it and stores them byte for byte,
// the Kafka front end passes producers' batches through, and the AMQP stream
// consumers decode them with an Iterator.
//
// # Batch format
//
// A batch is Kafka's record batch v2: a 61-byte big-endian header
// (baseOffset int64, length int32 counting the bytes after it, partition
// leader epoch int32, magic int8 = 2, crc uint32, attributes int16, last
// offset delta int32, base timestamp int64, max timestamp int64, producer id
// int64, producer epoch int16, base sequence int32, record count int32) then
// the records, compressed as a whole when the codec bits say so. The CRC is
// CRC32C (Castagnoli) over attributes..end, so the log sets baseOffset and the
// leader epoch (Build writes 0 and -1) without touching it. Attributes: bits
// 0-2 the codec (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd), bit 3 timestamp
// type (1 = log append time, held in max timestamp), bit 4 transactional,
// bit 5 control. A record is: varint length, int8 attributes (0), varlong
// timestamp delta from the base timestamp, varint offset delta, varint key
// length (-1 = null) and key, varint value length (-1 = null) and value,
// varint header count, each header a varint key length and key and a varint
// value length (-1 = null) and value; varints are zig-zag. A control batch
// holds one record whose key is int16 version 0 + int16 type (0 abort,
// 1 commit) and whose value is int16 version 0 + int32 coordinator epoch.
//
// Decoding accepts every codec Kafka defines: gzip, snappy both raw (as
// franz-go and librdkafka write it) and in the xerial framing Java clients
// write, lz4 frames (magic 2 batches use the standard frame format: the old
// Kafka lz4 header checksum quirk applies only to magic < 2, which is refused)
// and zstd. The records never decompress to more than the caller's limit
// (ErrTooLarge): output grows towards the limit and stops one byte past it;
// the codecs' own working buffers are bounded too (lz4 blocks at most 4 MiB,
// zstd windows at most 8 MiB). Every length is checked before use, a batch
// must hold exactly its declared record count with no bytes left over, and
// each record must consume exactly its declared length, as in Kafka.
//
// # AMQP messages as records
//
// An AMQP publish (FromAMQP):
//   - value = the body (never null: AMQP cannot publish a tombstone);
//   - key = the x-kafka-key header if set and not void (as a Kafka header
//     value, below), else the routing key, null when that is empty;
//   - Kafka headers = the AMQP headers except x-kafka-key, sorted by name,
//     each value as text: long strings and byte arrays as their bytes, void
//     as null, booleans "true"/"false", integers in decimal, floats in Go's
//     shortest 'g' form, decimals exactly ("-12.34"), timestamps in RFC 3339
//     UTC, tables and arrays as JSON (byte arrays as strings, base64 if not
//     UTF-8; decimals, timestamps, NaN and infinities as their text);
//   - plus, last, the reserved header x-amqp-properties: a version byte (1),
//     the exchange and the routing key as AMQP short strings, then the basic
//     property list (flags and fields) in internal/amqp091's encoding, which
//     keeps everything the AMQP side needs, header types included;
//   - timestamp = the timestamp property (seconds, so a multiple of 1000 ms)
//     if set, else the broker's arrival time.
//
// A record delivered over AMQP (ToAMQP):
//   - with a valid x-amqp-properties (the last one wins): exchange, routing
//     key and properties exactly as published, so AMQP -> stream -> AMQP is
//     lossless; the Kafka headers are ignored;
//   - without (produced by a Kafka client): exchange "", routing key = the key
//     (null = ""; a key over 255 bytes also goes whole in x-kafka-key),
//     headers = the Kafka headers as long strings, or byte arrays when not
//     UTF-8, void for null (a repeated name: the last wins; names over 255
//     bytes are dropped), timestamp property = the record timestamp;
//   - both: the header x-stream-offset (long) = the record's offset, as
//     RabbitMQ's stream deliveries carry it; body = the value.
package recordbatch
