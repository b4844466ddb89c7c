package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"

	"github.com/warren-mq/warren/internal/amqpserver"
	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/kafkaserver"
)

// defaultKafkaAddr is Kafka's port.
const defaultKafkaAddr = ":9092"

// kafkaFlags are the Kafka listener's settings.
type kafkaFlags struct {
	Addr           string
	TLSAddr        string
	AdvertisedAddr string
	VHost          string
	NumPartitions  int
	AutoCreate     bool
	AnonymousUser  string
}

func (k *kafkaFlags) register(r *registry) {
	r.Section("Kafka protocol listener")
	r.String(&k.Addr, "kafka-addr", defaultKafkaAddr, "ADDR", "Kafka protocol listen address (host:port); \"\" disables it. Topics are the streams of --kafka-vhost")
	r.String(&k.TLSAddr, "kafka-tls-addr", "", "ADDR", "Kafka protocol over TLS (Kafka's SSL/SASL_SSL listener) with --tls-cert and --tls-key; off by default")
	r.String(&k.AdvertisedAddr, "kafka-advertised-addr", "", "HOST:PORT", "address Kafka clients are told to connect to in metadata (Kafka's advertised.listeners); default: the address the client connected to")
	r.String(&k.VHost, "kafka-vhost", "/", "VHOST", "vhost whose streams are the Kafka topics and whose permissions apply")
	r.Int(&k.NumPartitions, "kafka-num-partitions", 1, "partitions of an auto-created topic or of CreateTopics without a count (Kafka's num.partitions)")
	r.Bool(&k.AutoCreate, "kafka-auto-create", true, "create a topic when a client produces to or asks for one that does not exist (Kafka's auto.create.topics.enable); --kafka-auto-create=false turns it off")
	r.String(&k.AnonymousUser, "kafka-anonymous-user", "guest", "NAME", "user a Kafka client that does not authenticate with SASL acts as (the loopback rule of --loopback-users applies: guest only from localhost); none requires SASL of every client")
}

// startKafka serves the Kafka protocol on --kafka-addr and --kafka-tls-addr
// and returns a function that stops it and the plain address. The default
// address being taken (a Kafka on this host) is logged and the broker runs
// without it; an address asked for explicitly must be free.
func startKafka(cfg *config, b *broker.Broker, log *slog.Logger, t *amqpserver.TLS) (stop func(), addr string, err error) {
	k := cfg.Kafka
	if k.Addr == "" && k.TLSAddr == "" {
		return func() {}, "", nil
	}
	srv := kafkaserver.New(kafkaserver.Config{
		AdvertisedAddr: k.AdvertisedAddr, VHost: k.VHost, NumPartitions: k.NumPartitions,
		DisableAutoCreate: !k.AutoCreate, AnonymousUser: k.AnonymousUser,
		CrashAfterTxnDecisions: crashAfterTxnDecisions(log),
	}, b, log)
	var l, tl net.Listener
	if k.Addr != "" {
		if l, err = net.Listen("tcp", k.Addr); err != nil {
			if k.Addr != defaultKafkaAddr {
				return nil, "", fmt.Errorf("--kafka-addr: %w", err)
			}
			log.Warn("Kafka listener not on its default address, which is in use; set --kafka-addr", "addr", k.Addr, "err", err)
			l = nil
		} else {
			addr = l.Addr().String()
		}
	}
	if k.TLSAddr != "" {
		if t == nil {
			return nil, "", errors.New("--kafka-tls-addr needs --tls-cert and --tls-key")
		}
		if tl, err = net.Listen("tcp", k.TLSAddr); err != nil {
			if l != nil {
				l.Close()
			}
			return nil, "", fmt.Errorf("--kafka-tls-addr: %w", err)
		}
	}
	if l == nil && tl == nil {
		return func() {}, "", nil
	}
	if l != nil {
		go func() { _ = srv.Serve(l) }()
	}
	if tl != nil {
		go func() { _ = srv.ServeTLS(tl, t.ServerConfig()) }()
		log.Info("Kafka TLS listener started", "kafka_tls", tl.Addr().String())
	}
	return func() { _ = srv.Close() }, addr, nil
}

// crashAfterTxnDecisions reads the crash tests' WARREN_TEST_CRASH_AFTER_TXN_DECISIONS
// (kafkaserver.Config.CrashAfterTxnDecisions): not a flag, as nobody but a
// crash test should ever set it.
func crashAfterTxnDecisions(log *slog.Logger) int {
	v := os.Getenv("WARREN_TEST_CRASH_AFTER_TXN_DECISIONS")
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		log.Warn("ignoring WARREN_TEST_CRASH_AFTER_TXN_DECISIONS", "value", v)
		return 0
	}
	log.Warn("crash-test hook armed: the process will kill itself after a Kafka transaction decision", "decisions", n)
	return n
}
