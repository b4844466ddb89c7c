#!/usr/bin/python3
"""TLS interop checks for an AMQPS listener using Debian's python3-pika 1.2.

Usage: pika_tls.py HOST PORT CERTDIR [--cert-required] [--user NAME] [--password PASS]

CERTDIR holds ca.pem, client.pem and client-key.pem (test/interop/gencerts
writes them); the client certificate's common name must be the user NAME
(default guest, password PASS, default guest), who may open vhost "/"
(gencerts DIR guest makes a certificate for guest). The listener
must verify peers (RabbitMQ's verify_peer) so that it offers EXTERNAL. With
--cert-required it must also have fail_if_no_peer_cert, and a client without
a certificate must be refused; without it, such a client logs in with PLAIN.

Output: one "ok NAME" / "FAIL NAME: why" line per scenario, then
"N passed, N failed"; the exit status is non-zero if anything failed.
"""

import os
import signal
import ssl
import sys
import time
import traceback
import warnings

import pika
from pika.credentials import ExternalCredentials, PlainCredentials

if len(sys.argv) < 4:
    sys.exit(__doc__)
HOST, PORT, CERTDIR = sys.argv[1], int(sys.argv[2]), sys.argv[3]
CERT_REQUIRED = "--cert-required" in sys.argv[4:]


def option(name, default):
    args = sys.argv[4:]
    return args[args.index(name) + 1] if name in args else default


USER, PASSWORD = option("--user", "guest"), option("--password", "guest")
SCENARIO_LIMIT = 15
RUN_ID = "%d-%d" % (os.getpid(), int(time.time() * 1000) % 100000000)


class Failure(Exception):
    """An assertion about broker behaviour did not hold."""


class Timeout(BaseException):
    """Raised by SIGALRM; BaseException so client code cannot swallow it."""


def _on_alarm(signum, frame):
    raise Timeout("scenario exceeded %ds" % SCENARIO_LIMIT)


def context(with_cert):
    """A client TLS context trusting the test CA, optionally with the client cert."""
    ctx = ssl.create_default_context(cafile=os.path.join(CERTDIR, "ca.pem"))
    if with_cert:
        ctx.load_cert_chain(os.path.join(CERTDIR, "client.pem"), os.path.join(CERTDIR, "client-key.pem"))
    return ctx


def params(with_cert, credentials):
    return pika.ConnectionParameters(
        host=HOST,
        port=PORT,
        virtual_host="/",
        credentials=credentials,
        ssl_options=pika.SSLOptions(context(with_cert), server_hostname="localhost"),
        connection_attempts=1,
        socket_timeout=5,
        stack_timeout=5,
    )


def round_trip(conn, what):
    """Declare a server-named queue, publish to it and get the message back."""
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    body = ("%s %s" % (what, RUN_ID)).encode()
    ch.basic_publish("", q, body)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        m, _, b = ch.basic_get(q, auto_ack=True)
        if m is not None:
            if b != body:
                raise Failure("got %r, want %r" % (b, body))
            return
        conn.process_data_events(time_limit=0.05)
    raise Failure("message not delivered within 10 s")


def tls_version(conn):
    return conn._impl._transport._sock.version()


def plain_login_with_client_cert():
    conn = pika.BlockingConnection(params(True, PlainCredentials(USER, PASSWORD)))
    try:
        if tls_version(conn) not in ("TLSv1.2", "TLSv1.3"):
            raise Failure("TLS version %s" % tls_version(conn))
        round_trip(conn, "plain")
    finally:
        conn.close()


def external_login_as_common_name():
    conn = pika.BlockingConnection(params(True, ExternalCredentials()))
    try:
        round_trip(conn, "external")
    finally:
        conn.close()


def no_client_cert():
    try:
        conn = pika.BlockingConnection(params(False, PlainCredentials(USER, PASSWORD)))
    except pika.exceptions.AMQPConnectionError:
        if CERT_REQUIRED:
            return
        raise
    try:
        if CERT_REQUIRED:
            raise Failure("connected without a client certificate despite fail_if_no_peer_cert")
        round_trip(conn, "no cert")
    finally:
        conn.close()


def tls11_refused():
    ctx = context(True)
    warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.1 is, which is the point
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    p = params(True, PlainCredentials(USER, PASSWORD))
    p.ssl_options = pika.SSLOptions(ctx, server_hostname="localhost")
    try:
        conn = pika.BlockingConnection(p)
    except (pika.exceptions.AMQPConnectionError, ssl.SSLError):
        return  # the broker answers with a protocol_version alert
    conn.close()
    raise Failure("a TLS 1.1 connection was accepted")


SCENARIOS = [plain_login_with_client_cert, external_login_as_common_name, no_client_cert, tls11_refused]


def main():
    signal.signal(signal.SIGALRM, _on_alarm)
    passed = failed = 0
    for fn in SCENARIOS:
        signal.alarm(SCENARIO_LIMIT)
        try:
            fn()
            print("ok", fn.__name__, flush=True)
            passed += 1
        except (Exception, Timeout) as e:
            why = "".join(traceback.format_exception_only(type(e), e)).strip().replace("\n", " ")
            print("FAIL %s: %s" % (fn.__name__, why), flush=True)
            failed += 1
        finally:
            signal.alarm(0)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
