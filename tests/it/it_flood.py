#!/usr/bin/python3
"""it_flood - a well-behaved producer keeps getting every ACK while others
flood the journal with malformed messages (one reads its NAKs, one never
reads anything)."""

import random
import threading
import time

import pbtest
from pbtest import envelope, pack


def bad_messages(n, seed):
    rnd = random.Random(seed)
    good = pack(envelope(id_="flood"))
    kinds = [
        lambda i: [b"activity.feedback", b"\xc1" + bytes(rnd.randrange(256)
                                                         for _ in range(20))],
        lambda i: [b"activity.feedback", good[:rnd.randrange(1, len(good))]],
        lambda i: [b"activity.feedback"],
        lambda i: [b"activity.feedback", good, b"x"],
        lambda i: [b"activity.feedback",
                   pack(envelope(id_="f-%d" % i,
                                 data=pbtest.feedback_data(relevance=9)))],
        lambda i: [b"sys.tick", pack(envelope("activity.feedback", "t-%d" % i,
                                              data={"now": 1},
                                              type="sys.tick"))],
        lambda i: [b"activity.feedback", b"\xdd\xff\xff\xff\xff\x00"],
        lambda i: [b"activity.feedback", b"\x91" * 3000],
    ]
    for i in range(n):
        yield kinds[i % len(kinds)](i)


def main():
    def extra(ap):
        ap.add_argument("--bad", type=int, default=50000)
        ap.add_argument("--good", type=int, default=1000)
    args = pbtest.parse_args(extra)
    res = pbtest.Results("it_flood")
    with pbtest.Journal(args.journal, log_name="it-flood") as j:
        j.start()
        state = {"reader_naks": 0, "reader_other": 0, "errors": []}
        stop = threading.Event()

        def flooder_reading():
            try:
                with pbtest.Producer(j, timeout=30) as f:
                    sent = 0
                    for frames in bad_messages(args.bad // 2, 1):
                        f.send_frames(frames)
                        sent += 1
                        while f.poll(0):
                            kind, _ = f.recv()
                            state["reader_naks" if kind == "NAK"
                                  else "reader_other"] += 1
                    deadline = time.time() + 60
                    while (state["reader_naks"] + state["reader_other"]
                           < sent and time.time() < deadline):
                        kind, _ = f.recv()
                        state["reader_naks" if kind == "NAK"
                              else "reader_other"] += 1
            except Exception as exc:  # noqa: BLE001
                state["errors"].append("reading flooder: %r" % exc)

        def flooder_deaf():
            try:
                with pbtest.Producer(j) as f:
                    for frames in bad_messages(args.bad - args.bad // 2, 2):
                        f.send_frames(frames)
                        if stop.is_set():
                            break
                    time.sleep(0.5)
            except Exception as exc:  # noqa: BLE001
                state["errors"].append("deaf flooder: %r" % exc)

        latencies = []
        acked = {}

        def well_behaved():
            threads = [threading.Thread(target=flooder_reading),
                       threading.Thread(target=flooder_deaf)]
            for t in threads:
                t.start()
            try:
                with pbtest.Producer(j, timeout=10) as p:
                    for i in range(args.good):
                        env = pbtest.sized_feedback("good-%d" % i, src="good")
                        t0 = time.perf_counter()
                        kind, body = p.publish(env)
                        latencies.append(time.perf_counter() - t0)
                        assert kind == "ACK", "good %d: %s %r" % (i, kind,
                                                                   body)
                        acked[("good", env["id"])] = body["seq"]
            finally:
                stop.set()
                for t in threads:
                    t.join(120)
            assert not state["errors"], state["errors"]
            lat = sorted(latencies)
            print("     good producer ACK latency under flood: p50 %.2f ms, "
                  "p99 %.2f ms, max %.2f ms; reading flooder got %d NAKs"
                  % (lat[len(lat) // 2] * 1e3, lat[int(len(lat) * .99)] * 1e3,
                     lat[-1] * 1e3, state["reader_naks"]))
            assert lat[-1] < 5.0, "an ACK took %.1f s" % lat[-1]

        def flooder_got_naks():
            assert state["reader_other"] == 0, \
                "%d malformed messages were ACKed" % state["reader_other"]
            assert state["reader_naks"] == args.bad // 2, \
                "reading flooder got %d NAKs for %d messages" % (
                    state["reader_naks"], args.bad // 2)

        def log_clean():
            assert j.alive(), "journal died under the flood"
            events, end = pbtest.full_log(j)
            pbtest.check_log_gapless(events, end)
            logged = {(e[2]["src"], e[2]["id"]): e[0] for e in events}
            assert logged == acked, "log has %d events, %d ACKed" % (
                len(logged), len(acked))
            hwm = j.vm_hwm_kb()
            print("     journal VmHWM after the flood: %s kB" % hwm)

        res.run("well-behaved producer ACKed throughout a flood of %d"
                % args.bad, well_behaved)
        res.run("the reading flooder got a NAK for each message",
                flooder_got_naks)
        res.run("the log holds only the good events", log_clean)
        if res.failed:
            print(j.log_tail())
    res.finish()


if __name__ == "__main__":
    main()
