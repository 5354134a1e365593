#!/usr/bin/python3
"""it_shutdown - SIGTERM stops the journal with exit status 0, and every
event it ACKed is in the log after a restart; the heartbeat's head agrees
with the log."""

import threading
import time

import zmq

import pbtest


def heartbeat_head(journal, timeout=5.0):
    sub = pbtest.CTX.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"sys.heartbeat")
    sub.connect(journal.fanout)
    try:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if sub.poll(200):
                type_, body = sub.recv_multipart()
                assert type_ == b"sys.heartbeat", type_
                return pbtest.unpack(body)
        raise AssertionError("no sys.heartbeat in %.0f s" % timeout)
    finally:
        sub.close(0)


def main():
    def extra(ap):
        ap.add_argument("--events", type=int, default=20000)
    args = pbtest.parse_args(extra)
    res = pbtest.Results("it_shutdown")
    with pbtest.Journal(args.journal, {"heartbeat-interval": 200},
                        log_name="it-shutdown") as j:
        acked = {}

        def idle_term():
            j.start()
            rc = j.term()
            assert rc == 0, "idle journal: SIGTERM exit status %r" % rc

        def term_under_load():
            j.start()
            stopped = threading.Event()
            errors = []

            def produce(k):
                try:
                    with pbtest.Producer(j, timeout=3) as p:
                        sent = 0
                        got = 0
                        envs = [pbtest.sized_feedback("s%d-%d" % (k, i),
                                                      src="sd-%d" % k)
                                for i in range(args.events // 2)]
                        while got < len(envs):
                            while sent < len(envs) and sent - got < 500:
                                p.send(envs[sent])
                                sent += 1
                            if not p.poll(3000):
                                break          # the journal is gone
                            kind, body = p.recv()
                            if kind == "NAK" and body["code"] == "unavailable":
                                break          # refused while stopping
                            assert kind == "ACK", body
                            assert body["id"] == envs[got]["id"]
                            acked[("sd-%d" % k, body["id"])] = body["seq"]
                            got += 1
                except Exception as exc:  # noqa: BLE001
                    if not stopped.is_set():
                        errors.append(repr(exc))

            threads = [threading.Thread(target=produce, args=(k,))
                       for k in range(2)]
            for t in threads:
                t.start()
            deadline = time.time() + 30
            while len(acked) < 2000 and time.time() < deadline:
                time.sleep(0.01)
            assert len(acked) >= 2000, "only %d ACKs" % len(acked)
            rc = j.term()
            stopped.set()
            for t in threads:
                t.join(30)
            assert not errors, errors
            assert rc == 0, "SIGTERM under load: exit status %r; log:\n%s" % (
                rc, j.log_tail())
            print("     %d ACKed before the journal stopped" % len(acked))

        def all_there_after_restart():
            j.start()
            events, end = pbtest.full_log(j)
            pbtest.check_log_gapless(events, end)
            logged = {(e[2]["src"], e[2]["id"]): e[0] for e in events}
            missing = [k for k in acked if k not in logged]
            assert not missing, "%d ACKed events lost, e.g. %r" % (
                len(missing), missing[:3])
            wrong = [k for k in acked if logged[k] != acked[k]]
            assert not wrong, "seqs changed: %r" % wrong[:3]
            hb = heartbeat_head(j)
            assert hb["head"] == end["head"], \
                "heartbeat head %r, log head %r" % (hb, end["head"])
            with pbtest.Replayer(j) as r:
                assert r.status()["head"] == end["head"]

        def term_again_then_publish():
            rc = j.term()
            assert rc == 0, "second SIGTERM: exit status %r" % rc
            j.start()
            with pbtest.Producer(j) as p:
                kind, body = p.publish(pbtest.envelope(id_="after"))
                assert kind == "ACK", body
            assert heartbeat_head(j)["head"] == body["seq"]

        res.run("SIGTERM on an idle journal -> exit 0", idle_term)
        res.run("SIGTERM while two producers publish -> exit 0",
                term_under_load)
        res.run("every ACKed event is there after restart; heartbeat head",
                all_there_after_restart)
        res.run("restart, SIGTERM, restart, publish", term_again_then_publish)
        if res.failed:
            print(j.log_tail())
    res.finish()


if __name__ == "__main__":
    main()
