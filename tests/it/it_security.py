#!/usr/bin/python3
"""it_security - CurveZMQ and rights per key, against a real pb-journal
(journal/security on) and the three workers with their own certificates:

  start       the journal starts only after its random-key probe is refused
              on every endpoint; without a ZAP handler (test builds:
              PB_TEST_NO_ZAP) it refuses to serve; bad configurations
              (no cert, inproc endpoint, a secret readable by others, a
              rights file others may write) are refused with a reason
  good        a listed key publishes, replays and subscribes
  unknown     100 handshakes with a key not in the rights file, on every
              endpoint: each refused (socket monitor: HANDSHAKE_FAILED_AUTH)
  plaintext   100 plain (NULL mechanism) ZMTP 3.0 greetings on bare TCP
              sockets: the journal's greeting offers CURVE and it closes
              the connection; then libzmq's plain client on each endpoint,
              a message each: its monitor sees the handshake fail
              (HANDSHAKE_FAILED_NO_DETAIL, or _PROTOCOL); and the bare
              client against a journal without security: offered NULL,
              the connection kept open
  src         100 envelopes with a src the key does not have: NAK
              unauthorized, naming src
  prefix      100 envelopes of a type outside the key's prefixes: NAK
              unauthorized, naming the type
  subscribe   a subscription outside the key's rights is not applied;
              sys.heartbeat always is (seen through heartbeats: no waiting)
  replay      a replay is filtered to the key's replay rights
  revoked     a key removed from the rights file while its connections are
              open: after the journal logs the reload, 100 envelopes on the
              open connection are NAKed, its open replay connection gets
              ERROR unauthorized, its subscriber is cut off (the fanout is
              rebound: its new handshake is refused), and a new handshake
              is refused; a bad rights file at SIGHUP keeps the old rights
  log         nothing of theirs is in the log; no secret key in any log
  workers     pb-nac, pb-cpe and pb-activity with their certificates run
              the reference data and the demo end to end
  pbctl       --cert/--server-key (or PBCTL_CERT, PBCTL_SERVER_KEY) against
              the secure journal; a stranger's or a plain pbctl gets no
              answer; keygen never overwrites, never prints the secret

Run: /usr/bin/python3 tests/it/it_security.py --bin-dir BUILD
"""

import faulthandler
import json
import os
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import tempfile
import time
import urllib.request

import zmq
import zmq.auth

import pbtest
import system

EVENT_NAMES = {
    zmq.EVENT_HANDSHAKE_SUCCEEDED: "HANDSHAKE_SUCCEEDED",
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "HANDSHAKE_FAILED_AUTH",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "HANDSHAKE_FAILED_PROTOCOL",
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "HANDSHAKE_FAILED_NO_DETAIL",
}
HANDSHAKE_EVENTS = (zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
                    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
ATTEMPTS = 100


def find_pbctl(bin_dir):
    path = os.path.join(bin_dir, "services", "ctl", "pbctl")
    if not os.access(path, os.X_OK):
        raise SystemExit("pbctl not found under %s" % bin_dir)
    return path


class Keys:
    """Certificates made with pbctl keygen, and the rights file."""

    def __init__(self, pbctl, root):
        self.pbctl = pbctl
        self.dir = os.path.join(root, "keys")
        self.rights_path = os.path.join(root, "rights")
        self.keys = {}

    def make(self, name):
        subprocess.run([self.pbctl, "keygen", name, "--dir", self.dir],
                       check=True, capture_output=True)
        path = os.path.join(self.dir, name + ".cert")
        public, _ = zmq.auth.load_certificate(path)
        _, secret = zmq.auth.load_certificate(path + "_secret")
        self.keys[name] = (public, secret, path)
        return path

    def curve(self, name, server="journal"):
        return (self.keys[name][0], self.keys[name][1], self.keys[server][0])

    def write_rights(self, entries):
        """entries: {name: (src, publish, subscribe, replay)}"""
        lines = ["#   it_security rights"]
        for name, (src, publish, subscribe, replay) in entries.items():
            lines += [name, '    public_key = "%s"' % self.keys[name][0].decode(),
                      '    src = "%s"' % src, '    publish = "%s"' % publish,
                      '    subscribe = "%s"' % subscribe, '    replay = "%s"' % replay]
        tmp = self.rights_path + ".tmp"
        with open(tmp, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(tmp, 0o600)
        os.rename(tmp, self.rights_path)        # atomic: never half a file


def monitored(sock_type, endpoint, curve=None, subscribe=None, reconnect_ivl=20):
    """A socket with a handshake monitor, connected; (sock, monitor)"""
    sock = pbtest.CTX.socket(sock_type)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RECONNECT_IVL, reconnect_ivl)
    pbtest.apply_curve(sock, curve)
    monitor = sock.get_monitor_socket(HANDSHAKE_EVENTS)
    if subscribe is not None:
        for prefix in subscribe:
            sock.setsockopt(zmq.SUBSCRIBE, prefix)
    sock.connect(endpoint)
    return sock, monitor


def try_send(sock, frames):
    """Send without waiting: the checks are on the handshake and on the
    log, not on this send, and a blocking send is one place this test
    could hang (a DEALER without a pipe). Whether it is the place of the
    hang seen once is not known: a plain DEALER kept its pipe after the
    handshake failed, when tried alone."""
    try:
        sock.send_multipart(frames, flags=zmq.NOBLOCK)
    except zmq.Again:
        pass


def zmtp_null_client(endpoint, timeout=10.0):
    """Greet 'endpoint' in ZMTP 3.0 (RFC 23) with the NULL mechanism, on a
    bare TCP socket whose every wait has a timeout, as a peer does: the
    signature and major version first, the rest once the server's
    greeting is in. Returns (the mechanism of the server's greeting, and
    whether the server closed the connection after the NULL one)."""
    host, port = endpoint[len("tcp://"):].rsplit(":", 1)
    deadline = time.time() + timeout
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        greeting = (b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00"
                    + b"NULL".ljust(20, b"\x00") + b"\x00" + b"\x00" * 31)
        s.sendall(greeting[:11])
        got = b""
        while len(got) < 64:
            s.settimeout(max(0.01, deadline - time.time()))
            chunk = s.recv(64 - len(got))
            if not chunk:
                raise AssertionError("%s: closed after %d bytes of its greeting: %r"
                                     % (endpoint, len(got), got))
            got += chunk
        assert got[0] == 0xff and got[9] == 0x7f and got[10] == 3, \
            "%s: not a ZMTP 3 greeting: %r" % (endpoint, got)
        s.sendall(greeting[11:])
        closed = False
        while time.time() < deadline:
            s.settimeout(max(0.01, deadline - time.time()))
            try:
                chunk = s.recv(4096)
            except socket.timeout:
                break
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                closed = True
                break
        return got[12:32].rstrip(b"\x00"), closed


def handshake_event(monitor, timeout=10.0):
    """The first handshake event of a monitored socket: (event, value)"""
    if not monitor.poll(int(timeout * 1000)):
        raise AssertionError("no handshake event in %.0fs" % timeout)
    frames = monitor.recv_multipart()
    event, value = struct.unpack("=HI", frames[0][:6])
    return event, value


def close_monitored(sock, monitor):
    sock.disable_monitor()
    monitor.close(0)
    sock.close(0)


def log_text(journal):
    with open(journal.log_path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def wait_log(journal, pattern, count, timeout=20.0):
    """Until 'pattern' appears 'count' times in the journal's log (the
    journal's own confirmation, not a guess at how long it takes)"""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(re.findall(pattern, log_text(journal))) >= count:
            return
        if not journal.alive():
            raise AssertionError("journal exited: %s" % journal.log_tail())
        time.sleep(0.02)
    raise AssertionError("no %r x%d in the journal's log:\n%s" % (
        pattern, count, journal.log_tail()))


def feedback(id_, src):
    return pbtest.envelope("activity.feedback", id_, src, pbtest.feedback_data())


def ally(id_, src, country="ISL"):
    return pbtest.envelope("registry.ally", id_, src,
                           {"country": country, "name": "Iceland", "joined": "1949-04-04"})


def heartbeat_after(sub, seq, timeout=10.0):
    """Read 'sub' until a sys.heartbeat with head >= seq; returns the other
    messages seen before it (fanout is in seq order, so anything at or
    below seq that was going to reach 'sub' has arrived by then)"""
    seen = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not sub.poll(200):
            continue
        type_, body = sub.recv_multipart()
        if type_ == b"sys.heartbeat":
            if pbtest.unpack(body)["head"] >= seq:
                return seen
        else:
            seen.append(type_)
    raise AssertionError("no heartbeat with head >= %d in %.0fs" % (seq, timeout))


def main():
    args = pbtest.parse_args()
    #  Once in about twenty runs on a loaded machine this test hung
    #  (ctest's timeout, 120 s) in the plaintext check when it was 100
    #  monitored libzmq clients, where is not known; it is now 100 bare
    #  ZMTP clients with timeouts and three monitored ones. Should a hang
    #  come again, every thread's stack goes to the output well before
    #  ctest's timeout, so that it says where it is
    faulthandler.dump_traceback_later(90, exit=False)
    pbctl = find_pbctl(args.bin_dir)
    res = pbtest.Results("it_security")
    root = tempfile.mkdtemp(prefix="pb-it-security-")
    keys = Keys(pbctl, root)
    for name in ("journal", "op", "prod", "narrow", "revoked", "stranger",
                 "nac", "cpe", "activity"):
        keys.make(name)
    rights = {
        "op": ("*", "registry. nac. cpe. activity. sys.tick", "*", "*"),
        "prod": ("prod", "registry. activity.", "", ""),
        "narrow": ("narrow", "activity.feedback", "notify.", "notify."),
        "revoked": ("revoked", "activity.", "*", "*"),
        "nac": ("nac", "notify.nac.", "*", "*"),
        "cpe": ("cpe", "notify.cpe.", "*", "*"),
        "activity": ("activity", "notify.activity. notify.partner. notify.consultation.",
                     "*", "*"),
    }
    keys.write_rights(rights)
    metrics_port = pbtest.free_port()
    options = {"security": "true", "cert": keys.keys["journal"][2],
               "rights": keys.rights_path, "heartbeat-interval": 50,
               "metrics": "127.0.0.1:%d" % metrics_port}
    journal = pbtest.Journal(args.journal, options, log_name="it-security")
    journal.curve = keys.curve("op")
    try:
        run(args, res, keys, rights, journal, options, metrics_port)
    finally:
        journal.close()
        shutil.rmtree(root, ignore_errors=True)
    res.finish()


def metric(port, name):
    """The value of one sample of the journal's /metrics (published once a
    second: poll until 'name' is there)"""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return None


def wait_metric(port, name, at_least, timeout=10.0):
    deadline = time.time() + timeout
    value = None
    while time.time() < deadline:
        value = metric(port, name)
        if value is not None and value >= at_least:
            return value
        time.sleep(0.1)
    raise AssertionError("%s = %r, want >= %r" % (name, value, at_least))


def run(args, res, keys, rights, j, options, metrics_port):
    def view(name):
        """The journal's endpoints with the keys of 'name' (for Producer,
        Replayer)"""
        v = pbtest.Journal.__new__(pbtest.Journal)
        v.ingest, v.replay, v.fanout, v.curve = j.ingest, j.replay, j.fanout, keys.curve(name)
        return v

    def refused_config(extra, expect, env=None):
        opts = dict(options)
        opts.pop("metrics")                     # the running journal has the port
        opts.update(extra)
        with pbtest.Journal(args.journal, opts, log_name="it-security-bad") as k:
            k.start(wait=False, env=env)
            rc = k.wait_exit(15)
            assert rc not in (0, None), "journal started: %r %s" % (rc, k.log_tail())
            text = log_text(k) + k.log_tail()
            assert expect in text, "%r not in:\n%s" % (expect, k.log_tail())

    def start():
        j.start()
        text = log_text(j)
        assert "security check passed" in text, j.log_tail()
        assert "security on" in text

    def no_zap():
        refused_config({}, "security check failed", env={"PB_TEST_NO_ZAP": "1"})

    def bad_configs():
        refused_config({"cert": ""}, "needs journal/cert")
        refused_config({"ingest": "inproc://x"}, "not tcp:// or ipc://")
        secret = keys.keys["journal"][2] + "_secret"
        os.chmod(secret, 0o644)
        try:
            refused_config({}, "may be read by others")
        finally:
            os.chmod(secret, 0o600)
        os.chmod(keys.rights_path, 0o666)
        try:
            refused_config({}, "may be changed by others")
        finally:
            os.chmod(keys.rights_path, 0o600)
        refused_config({"rights": keys.rights_path + ".absent"}, "cannot be read")
        #  A damaged secret file: refused, and no line of it is printed
        #  (zconfig would echo the line it cannot parse, the key with it)
        with open(secret) as f:
            original = f.read()
        secret_txt = keys.keys["journal"][1].decode()
        with open(secret, "w") as f:
            f.write(original.replace('secret-key = "%s"' % secret_txt,
                                     'secret-key = "%s" (broken' % secret_txt[:39]))
        try:
            with pbtest.Journal(args.journal, dict(options, metrics=""),
                                log_name="it-security-bad") as k:
                k.start(wait=False)
                assert k.wait_exit(15) not in (0, None)
                text = log_text(k)
                assert "not a certificate with its secret key" in text, k.log_tail()
                assert secret_txt[:20] not in text, "the secret key is in the log"
        finally:
            with open(secret, "w") as f:
                f.write(original)

    res.run("start: the random-key probe is refused on every endpoint", start)
    res.run("start: without a ZAP handler the journal refuses to serve", no_zap)
    res.run("start: bad security configurations are refused", bad_configs)

    acked = {}

    def good():
        with pbtest.Producer(j) as p:
            replies = p.publish_all([ally("good-%d" % i, "prod") for i in range(3)]
                                    + [feedback("good-fb-%d" % i, "prod")
                                       for i in range(20)])
        assert all(kind == "ACK" for kind, _ in replies), replies[:3]
        for kind, body in replies:
            acked[body["id"]] = body["seq"]
        events, end = pbtest.full_log(j)
        assert end["head"] == max(acked.values()), end
        with pbtest.Producer(view("prod")) as p:
            kind, body = p.publish(feedback("good-prod", "prod"))
        assert kind == "ACK", body
        acked[body["id"]] = body["seq"]

    res.run("good: a listed key publishes, replays", good)

    stranger = keys.curve("stranger")

    def unknown():
        endpoints = [(zmq.DEALER, j.ingest), (zmq.DEALER, j.replay), (zmq.SUB, j.fanout)]
        counts = {}
        for i in range(ATTEMPTS):
            type_, endpoint = endpoints[i % 3]
            sock, monitor = monitored(type_, endpoint, stranger,
                                      subscribe=[b""] if type_ == zmq.SUB else None)
            if type_ == zmq.DEALER:
                try_send(sock, [b"activity.feedback",
                                pbtest.pack(feedback("stranger-%d" % i, "prod"))])
            event, value = handshake_event(monitor)
            close_monitored(sock, monitor)
            counts[EVENT_NAMES.get(event, event)] = counts.get(EVENT_NAMES.get(event, event), 0) + 1
            assert event == zmq.EVENT_HANDSHAKE_FAILED_AUTH, \
                "attempt %d on %s: %s %s" % (i, endpoint, EVENT_NAMES.get(event, event), value)
            assert value == 400, "ZAP status %r" % value
        assert counts == {"HANDSHAKE_FAILED_AUTH": ATTEMPTS}, counts

    def plaintext():
        #  A plain client as a stranger's library would be: a ZMTP 3.0
        #  greeting that offers the NULL mechanism, on a bare TCP socket
        #  whose every wait has a timeout. The journal must answer with its
        #  greeting (CURVE) and close.
        endpoints = [j.ingest, j.replay, j.fanout]
        for i in range(ATTEMPTS):
            endpoint = endpoints[i % 3]
            try:
                mechanism, closed = zmtp_null_client(endpoint)
            except AssertionError as e:
                raise AssertionError("attempt %d: %s" % (i, e)) from e
            assert mechanism == b"CURVE", \
                "attempt %d on %s: the journal offered %r" % (i, endpoint, mechanism)
            assert closed, "attempt %d on %s: still open after a NULL greeting" % (i, endpoint)
        #  And libzmq's own plain client, once per socket type: its monitor
        #  sees the handshake fail. A long reconnect interval keeps it to
        #  one handshake, so its monitor has one event to give.
        for k, (type_, endpoint) in enumerate(((zmq.DEALER, j.ingest), (zmq.DEALER, j.replay),
                                               (zmq.SUB, j.fanout))):
            sock, monitor = monitored(type_, endpoint, None,
                                      subscribe=[b""] if type_ == zmq.SUB else None,
                                      reconnect_ivl=60000)
            if type_ == zmq.DEALER:
                try_send(sock, [b"activity.feedback",
                                pbtest.pack(feedback("plain-zmq-%d" % k, "prod"))])
            event, value = handshake_event(monitor)
            close_monitored(sock, monitor)
            #  The journal sees the mechanism mismatch and closes: the plain
            #  client sees its handshake fail, with or without the detail
            assert event in (zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
                             zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL), \
                "%s: %s" % (endpoint, EVENT_NAMES.get(event, event))
            if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
                assert value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH, hex(value)

    res.run("unknown: %d handshakes with an unlisted key refused (FAILED_AUTH)"
            % ATTEMPTS, unknown)
    res.run("plaintext: %d plain ZMTP clients and libzmq's refused at the handshake"
            % ATTEMPTS, plaintext)

    def plaintext_control():
        #  The same bare client against a journal without security: it is
        #  offered NULL and the connection stays open, so the check above
        #  tells a refusal from a plain server
        with pbtest.Journal(args.journal, log_name="it-security-plain") as k:
            k.start()
            for endpoint in (k.ingest, k.replay, k.fanout):
                mechanism, closed = zmtp_null_client(endpoint, timeout=0.5)
                assert mechanism == b"NULL" and not closed, (endpoint, mechanism, closed)

    res.run("plaintext: the same client is served by a journal without security",
            plaintext_control)

    def wrong_src():
        with pbtest.Producer(view("prod")) as p:
            replies = p.publish_all([feedback("src-%d" % i, "somebody-else")
                                     for i in range(ATTEMPTS)])
        for kind, body in replies:
            assert kind == "NAK" and body["code"] == "unauthorized", body
            assert body["error"].startswith("src:"), body

    def forbidden_prefix():
        with pbtest.Producer(view("narrow")) as p:
            replies = p.publish_all([ally("prefix-%d" % i, "narrow")
                                     for i in range(ATTEMPTS)])
            kind, body = p.publish(feedback("narrow-ok", "narrow"))
        for kind_, body_ in replies:
            assert kind_ == "NAK" and body_["code"] == "unauthorized", body_
            assert body_["error"].startswith("type: registry.ally"), body_
        assert kind == "ACK", body              # its own prefix is fine
        acked[body["id"]] = body["seq"]
        #  Logged once a second with a count, not once per message
        wait_log(j, r"messages refused by rights in the last second count=\d+ "
                    r"last_key=narrow", 1)
        text = log_text(j)
        assert text.count("prefix-") == 0, "an id of a refused message in the log"

    def nak_order():
        #  A malformed envelope from a key that may not publish it still
        #  gets the earlier row of the NAK table
        with pbtest.Producer(view("narrow")) as p:
            p.send(b"\xc1", "registry.ally")
            kind, body = p.recv()
        assert kind == "NAK" and body["code"] == "bad_msgpack", body

    res.run("src: %d envelopes with a src the key lacks are NAKed unauthorized"
            % ATTEMPTS, wrong_src)
    res.run("prefix: %d envelopes outside the key's prefixes are NAKed unauthorized"
            % ATTEMPTS, forbidden_prefix)
    res.run("prefix: the NAK table's order holds (bad_msgpack before unauthorized)",
            nak_order)

    def subscribe_rights():
        narrow = keys.curve("narrow")
        sub, monitor = monitored(zmq.SUB, j.fanout, narrow,
                                 subscribe=[b"", b"registry.", b"sys.heartbeat"])
        try:
            event, _ = handshake_event(monitor)
            assert event == zmq.EVENT_HANDSHAKE_SUCCEEDED, EVENT_NAMES.get(event)
            heartbeat_after(sub, 0)             # subscribed and heard
            with pbtest.Producer(j) as p:
                kind, body = p.publish(ally("sub-check", "op", "NOR"))
            assert kind == "ACK", body
            acked[body["id"]] = body["seq"]
            seen = heartbeat_after(sub, body["seq"])
            assert seen == [], "a refused subscription got %r" % seen[:3]
            wait_log(j, r"subscriptions refused in the last second count=\d+ "
                        r"last_key=narrow", 1)
        finally:
            close_monitored(sub, monitor)

    def replay_rights():
        with pbtest.Replayer(view("narrow")) as r:
            events, end, _ = r.replay(1)
        assert events == [], "narrow replays only notify.: got %r" % events[:2]
        with pbtest.Replayer(j) as r:
            head = r.status()["head"]
        assert end["through"] == head and end["count"] == 0, end
        with pbtest.Replayer(view("narrow")) as r:
            r.command("TICK", {"now": 1735689600000})
            frames = r.recv()
        assert frames[0] == b"ERROR", frames
        assert pbtest.unpack(frames[1])["code"] == "unauthorized", frames

    def subscribers_leave():
        #  libzmq tells an XPUB_MANUAL owner of a closed pipe's
        #  subscriptions too: they must not be taken off a live one
        op = keys.curve("op")
        stay, stay_monitor = monitored(zmq.SUB, j.fanout, op,
                                       subscribe=[b"registry.", b"sys.heartbeat"])
        try:
            assert handshake_event(stay_monitor)[0] == zmq.EVENT_HANDSHAKE_SUCCEEDED
            heartbeat_after(stay, 0)
            for i in range(20):
                leave, monitor = monitored(zmq.SUB, j.fanout, op,
                                           subscribe=[b"registry.", b"sys.heartbeat"])
                assert handshake_event(monitor)[0] == zmq.EVENT_HANDSHAKE_SUCCEEDED
                heartbeat_after(leave, 0)
                leave.setsockopt(zmq.UNSUBSCRIBE, b"registry.")
                close_monitored(leave, monitor)
            with pbtest.Producer(j) as p:
                kind, body = p.publish(ally("after-leave", "op", "DNK"))
            assert kind == "ACK", body
            acked[body["id"]] = body["seq"]
            seen = heartbeat_after(stay, body["seq"])
            assert seen == [b"registry.ally"], seen
        finally:
            close_monitored(stay, stay_monitor)

    res.run("subscribe: a subscription outside the rights is not applied; "
            "heartbeats are", subscribe_rights)
    res.run("subscribe: 20 subscribers leaving keep another's subscription",
            subscribers_leave)
    res.run("replay: filtered to the key's replay rights; TICK needs sys.tick",
            replay_rights)

    def revoked():
        curve = keys.curve("revoked")
        producer = pbtest.Producer(view("revoked"))
        replayer = pbtest.Replayer(view("revoked"))
        sub, sub_monitor = monitored(zmq.SUB, j.fanout, curve, subscribe=[b""])
        try:
            kind, body = producer.publish(feedback("revoked-before", "revoked"))
            assert kind == "ACK", body
            acked[body["id"]] = body["seq"]
            assert replayer.status()["head"] >= body["seq"]
            event, _ = handshake_event(sub_monitor)
            assert event == zmq.EVENT_HANDSHAKE_SUCCEEDED
            heartbeat_after(sub, body["seq"])

            #  A broken rights file at SIGHUP: refused, the old rights stay
            with open(keys.rights_path, "a") as f:
                f.write("broken\n    public_key = \"nope\"\n")
            reloads = log_text(j).count("rights reloaded")
            failures = log_text(j).count("rights reload failed")
            os.kill(j.pid(), signal.SIGHUP)
            wait_log(j, "rights reload failed", failures + 1)
            kind, body = producer.publish(feedback("revoked-still", "revoked"))
            assert kind == "ACK", body
            acked[body["id"]] = body["seq"]

            fewer = dict(rights)
            del fewer["revoked"]
            keys.write_rights(fewer)
            os.kill(j.pid(), signal.SIGHUP)
            wait_log(j, r"rights reloaded keys=%d reloads=\d+ fanout=rebound"
                     % len(fewer), reloads + 1)
            replies = producer.publish_all([feedback("revoked-%d" % i, "revoked")
                                            for i in range(ATTEMPTS)])
            for kind, body in replies:
                assert kind == "NAK" and body["code"] == "unauthorized", body
                assert "revoked" in body["error"], body
            replayer.command("STATUS")
            frames = replayer.recv()
            assert frames[0] == b"ERROR", frames
            assert pbtest.unpack(frames[1])["code"] == "unauthorized"
            #  The fanout was rebound: the subscriber's reconnection is refused
            event, value = handshake_event(sub_monitor)
            while event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                event, value = handshake_event(sub_monitor)
            assert event == zmq.EVENT_HANDSHAKE_FAILED_AUTH, EVENT_NAMES.get(event)
            #  And a new connection with that key
            fresh, monitor = monitored(zmq.DEALER, j.ingest, curve)
            event, _ = handshake_event(monitor)
            close_monitored(fresh, monitor)
            assert event == zmq.EVENT_HANDSHAKE_FAILED_AUTH, EVENT_NAMES.get(event)
            #  The reload is counted in /metrics too, and so are the refusals
            wait_metric(metrics_port, "pb_journal_rights_reloads_total", 1)
            wait_metric(metrics_port, "pb_journal_handshakes_refused_total", ATTEMPTS)
            assert metric(metrics_port, "pb_journal_rights_keys") == len(fewer)
            #  While a key still listed keeps working
            with pbtest.Producer(view("prod")) as p:
                kind, body = p.publish(feedback("after-revoke", "prod"))
            assert kind == "ACK", body
            acked[body["id"]] = body["seq"]
        finally:
            producer.close()
            replayer.close()
            close_monitored(sub, sub_monitor)

    res.run("revoked: a key removed at SIGHUP is refused on its open connections "
            "(%d NAKs), replay and fanout" % ATTEMPTS, revoked)

    def log_clean():
        events, end = pbtest.full_log(j)
        pbtest.check_log_gapless(events, end)
        ids = {env["id"]: seq for seq, _, env, _ in events}
        for id_, seq in acked.items():
            assert ids.get(id_) == seq, "ACKed %s at %d, log has %r" % (id_, seq, ids.get(id_))
        theirs = [id_ for id_ in ids if re.match(
            r"(stranger|plain|plain-zmq|src|prefix|revoked)-\d+$", id_)]
        assert theirs == [], "refused events in the log: %r" % theirs[:5]
        assert all(env["src"] != "somebody-else" for _, _, env, _ in events)
        text = log_text(j)
        for name, (_, secret, _) in keys.keys.items():
            assert secret.decode() not in text, "secret key of %s in the log" % name

    res.run("log: nothing refused is in the log; no secret key in the journal's log",
            log_clean)

    def workers():
        binaries = system.worker_binaries(args.bin_dir)
        ws = []
        try:
            for name in system.WORKERS:
                w = system.Worker(name, binaries[name], j,
                                  options={"cert": keys.keys[name][2],
                                           "server-key": keys.keys["journal"][2]})
                ws.append(w.start())
            src_dir = os.path.dirname(os.path.dirname(os.path.dirname(
                os.path.abspath(__file__))))
            for name in ("registry.jsonl", "demo.jsonl"):
                proc = subprocess.run(
                    [keys.pbctl, "publish", "--ingest", j.ingest, "--json",
                     "--cert", keys.keys["op"][2], "--server-key", keys.keys["journal"][2],
                     os.path.join(src_dir, "deploy", name)],
                    capture_output=True, timeout=120)
                assert proc.returncode == 0, proc.stdout.decode()[-500:] + proc.stderr.decode()
            system.wait_quiescent(j, ws, timeout=120)
            #  A reload that takes a subscriber's rights away rebinds the
            #  fanout under the running workers: they reconnect, fill the
            #  gap from replay, and catch up with what comes next
            fewer = {k: v for k, v in rights.items() if k not in ("revoked", "narrow")}
            keys.write_rights(fewer)
            reloads = log_text(j).count("fanout=rebound")
            os.kill(j.pid(), signal.SIGHUP)
            wait_log(j, "fanout=rebound", reloads + 1)
            with pbtest.Producer(j) as p:
                replies = p.publish_all([ally("rebind-%d" % i, "op", "ISL")
                                         for i in range(50)])
            assert all(kind == "ACK" for kind, _ in replies)
            system.wait_quiescent(j, ws, timeout=120)
            notes = system.notifications(j)
            srcs = {env["src"] for env in notes}
            assert {"nac", "cpe"} <= srcs, srcs
            assert any(env["type"] == "notify.nac.adopted" for env in notes)
            assert any(env["type"] == "notify.cpe.assigned" for env in notes)
            for w in ws:
                text = open(w.log_path, "rb").read().decode("utf-8", "replace")
                assert keys.keys[w.name][1].decode() not in text, "secret in %s log" % w.name
                for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                               "runtime error:"):
                    assert marker not in text, "%s in pb-%s's log" % (marker, w.name)
        finally:
            for w in ws:
                w.close()

    res.run("workers: the three workers with their certificates run the system "
            "end to end", workers)

    def pbctl_client():
        def run_pbctl(*argv, env=None):
            full = dict(os.environ)
            full.pop("PBCTL_CERT", None)
            full.pop("PBCTL_SERVER_KEY", None)
            full.update(env or {})
            return subprocess.run([keys.pbctl] + list(argv), capture_output=True,
                                  timeout=60, env=full)
        secure = ["--cert", keys.keys["op"][2], "--server-key", keys.keys["journal"][2]]
        proc = run_pbctl("status", "--replay", j.replay, "--json", *secure)
        assert proc.returncode == 0, proc.stderr.decode()
        proc = run_pbctl("status", "--replay", j.replay, "--timeout", "1")
        assert proc.returncode == 3, "plain pbctl against a secure journal: %d" % proc.returncode
        proc = run_pbctl("replay", "--replay", j.replay, "--from", "1", env={"PBCTL_CERT": keys.keys["op"][2],
                                   "PBCTL_SERVER_KEY": keys.keys["journal"][0].decode()})
        assert proc.returncode == 0 and proc.stdout.count(b"\n") > 0, proc.stderr.decode()
        proc = run_pbctl("status", "--replay", j.replay, "--timeout", "1", "--cert",
                         keys.keys["stranger"][2], "--server-key", keys.keys["journal"][2])
        assert proc.returncode == 3, proc.returncode
        proc = run_pbctl("status", "--cert", keys.keys["op"][2])
        assert proc.returncode != 0 and b"server-key" in proc.stderr, proc.stderr
        #  keygen: never overwrites, refuses a bad name, says it in JSON
        proc = run_pbctl("keygen", "op", "--dir", keys.dir)
        assert proc.returncode == 1 and b"never overwritten" in proc.stderr, proc.stderr
        proc = run_pbctl("keygen", "../evil", "--dir", keys.dir)
        assert proc.returncode == 2, proc.returncode
        proc = run_pbctl("keygen", "json-key", "--dir", keys.dir, "--json")
        assert proc.returncode == 0, proc.stderr
        made = json.loads(proc.stdout)
        public, _ = zmq.auth.load_certificate(made["cert"])
        assert made["public_key"] == public.decode() and made["name"] == "json-key"
        _, secret = zmq.auth.load_certificate(made["secret"])
        assert secret.decode() not in proc.stdout.decode(), "keygen printed the secret"

    res.run("pbctl: --cert/--server-key (or PBCTL_CERT) against the secure journal; "
            "keygen", pbctl_client)

    def files():
        mode = stat.S_IMODE(os.stat(os.path.join(j.data_dir, "log")).st_mode)
        assert mode == 0o700, oct(mode)
        for name in keys.keys:
            mode = stat.S_IMODE(os.stat(keys.keys[name][2] + "_secret").st_mode)
            assert mode == 0o600, (name, oct(mode))
        assert stat.S_IMODE(os.stat(keys.dir).st_mode) == 0o700

    res.run("files: data dir 0700, secret keys 0600, key dir 0700", files)


if __name__ == "__main__":
    main()
