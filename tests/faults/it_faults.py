#!/usr/bin/python3
"""it_faults - the system under the faults of a running deployment
(issue 5, Faults)

  slow subscriber  a monitoring SUB (RCVHWM 10) that stops reading while
                   150,000 events are published: the journal's PUB drops
                   for it, the monitor sees the gap (a seq jump, or a
                   heartbeat head beyond what it got), and `pbctl tail
                   --from` fills it from replay, gapless; the three workers
                   meanwhile lose nothing (each reaches the head and its
                   store equals a clean rebuild)
  reconnects       600 producers connect, publish, disconnect (three
                   threads at once), and 100 resend an event after closing
                   without reading its ACK: every event logged once, a
                   resend ACKed with the first seq, the journal's open file
                   descriptors back where they were
  journal restart  the journal killed -9 twice and stopped with SIGTERM
                   once while the workers consume a scenario: no worker
                   exits, each reaches the head, stores equal a clean
                   rebuild, no notification logged twice
  catch-up restart each worker killed -9 three times in the middle of a
                   catch-up (its applied_seq between its start and the
                   head), then equal to a clean rebuild

Usage: it_faults.py --bin-dir BUILD [--seed N]
"""

import os
import random
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "it"))

import pbtest      # noqa: E402
import scenario    # noqa: E402
import system      # noqa: E402
import zmq         # noqa: E402


def extra_args(ap):
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--flood", type=int, default=150000)


def find_pbctl(bin_dir):
    for cand in (os.path.join(bin_dir, "services", "ctl", "pbctl"),
                 os.path.join(bin_dir, "pbctl")):
        if os.path.isfile(cand):
            return cand
    raise SystemExit("pbctl not found under %s" % bin_dir)


def rebuild_equal(journal, binaries, dumps, names=system.WORKERS):
    """Clean workers on empty stores replay the log: their dumps must equal
    'dumps'; no notification twice in the log."""
    head = system.status(journal)["head"]
    print("     clean rebuild of %s through head %d" % (", ".join(names), head),
          flush=True)
    clean, proxies = {}, {}
    try:
        for name in names:
            proxies[name] = system.IngestProxy(journal)
            clean[name] = system.Worker(name, binaries[name], journal,
                                        ingest=proxies[name].endpoint).start()
        for name in names:
            system.wait_applied(clean[name], head, timeout=180)
        time.sleep(0.5)
        now_head = system.status(journal)["head"]
        assert now_head == head, "the log grew from %d to %d during the " \
            "rebuild" % (head, now_head)
        for name in names:
            got = clean[name].dump()
            assert got == dumps[name], "pb-%s differs from a clean rebuild: " \
                "%s" % (name, system.dump_diff(got, dumps[name]))
        system.check_no_duplicate_notifications(system.notifications(journal))
    finally:
        for w in clean.values():
            w.close()
        for p in proxies.values():
            p.close()


def stop_and_dump(workers):
    dumps = {}
    for name, w in workers.items():
        assert w.term() == 0, "pb-%s: bad exit on SIGTERM" % name
        dumps[name] = w.dump()
        print("     pb-%s stopped at applied_seq %s" % (
            name, w.applied_seq()), flush=True)
    return dumps


# ---------------------------------------------------------------------------


def slow_subscriber(args, res, binaries):
    journal = pbtest.Journal(args.journal, {"clock": "manual",
                                            "heartbeat-interval": 100},
                             log_name="pb-it-faults-slow")
    workers = {}
    monitor = None
    state = {}
    try:
        journal.start()
        for name in system.WORKERS:
            workers[name] = system.Worker(name, binaries[name], journal).start()

        def flood():
            nonlocal monitor
            with pbtest.Producer(journal, timeout=30) as p:
                for t in ("registry.ally", "registry.partner",
                          "activity.registered"):
                    kind, body = p.publish(pbtest.envelope(t, "ref-" + t))
                    assert kind == "ACK", body
            monitor = pbtest.CTX.socket(zmq.SUB)
            monitor.setsockopt(zmq.LINGER, 0)
            monitor.setsockopt(zmq.RCVHWM, 10)
            monitor.setsockopt(zmq.RCVBUF, 4096)
            monitor.setsockopt(zmq.SUBSCRIBE, b"")
            monitor.connect(journal.fanout)
            time.sleep(0.3)
            envs = [pbtest.pack(pbtest.envelope(
                "activity.feedback", "f-%d" % i, "flood"))
                for i in range(args.flood)]
            t0 = time.time()
            with pbtest.Producer(journal, timeout=60) as p:
                window, sent, got = 2000, 0, 0
                while got < len(envs):
                    while sent < len(envs) and sent - got < window:
                        p.send(envs[sent], "activity.feedback")
                        sent += 1
                    kind, body = p.recv()
                    assert kind == "ACK", body
                    got += 1
            state["head"] = system.status(journal)["head"]
            #  Now the monitor reads what it was left
            #  Heartbeats keep coming: read until one carries the head
            seqs, hb_head = [], 0
            deadline = time.time() + 60
            while hb_head < state["head"] and time.time() < deadline:
                if not monitor.poll(1000):
                    continue
                frames = monitor.recv_multipart()
                body = pbtest.unpack(frames[1])
                if frames[0] == b"sys.heartbeat":
                    hb_head = max(hb_head, body["head"])
                else:
                    seqs.append(body["seq"])
            jumps = [(a, b) for a, b in zip(seqs, seqs[1:]) if b != a + 1]
            missing = state["head"] - len(seqs)
            assert missing > 0 and (jumps or hb_head > (seqs or [0])[-1]), \
                "the monitor lost nothing (%d of %d): not slow enough" % (
                    len(seqs), state["head"])
            first_gap = jumps[0][0] + 1 if jumps else (seqs or [0])[-1] + 1
            state["seqs"], state["first_gap"] = seqs, first_gap
            print("     %d events in %.1fs; the monitor got %d, saw its "
                  "first gap at seq %d (%d seq jumps, heartbeat head %d)" % (
                      args.flood, time.time() - t0, len(seqs), first_gap,
                      len(jumps), hb_head), flush=True)
        if not res.run("slow subscriber: the monitor sees the gap", flood):
            return

        def fill():
            head, frm = state["head"], state["first_gap"]
            out = subprocess.run(
                [find_pbctl(args.bin_dir), "tail", "--json", "--from",
                 str(frm), "--count", str(head - frm + 1),
                 "--fanout", journal.fanout, "--replay", journal.replay,
                 "--ingest", journal.ingest], capture_output=True,
                timeout=120)
            assert out.returncode == 0, "pbctl tail exit %d: %s %s" % (
                out.returncode, out.stderr.decode()[-500:],
                out.stdout.decode()[-300:])
            import json
            got = [json.loads(line)["seq"] for line in
                   out.stdout.decode().splitlines() if line.strip()]
            assert got == list(range(frm, head + 1)), \
                "pbctl tail --from %d: %d events, not %d..%d gapless" % (
                    frm, len(got), frm, head)
            #  The monitor subscribed after the 3 reference events
            base = state["seqs"][0]
            seen = set(s for s in state["seqs"] if s < frm) | set(got)
            assert seen == set(range(base, head + 1)), \
                "the monitor and the fill do not make %d..%d" % (base, head)
            print("     pbctl tail --from %d filled %d events: the monitor "
                  "has %d..%d, gapless" % (frm, len(got), base, head),
                  flush=True)
        res.run("slow subscriber: pbctl tail fills the gap", fill)

        def workers_whole():
            head = system.wait_quiescent(journal, list(workers.values()),
                                         timeout=240)
            assert head == state["head"]
            rebuild_equal(journal, binaries, stop_and_dump(workers))
        res.run("slow subscriber: the workers lost nothing (stores equal a "
                "clean rebuild)", workers_whole)
    finally:
        if monitor is not None:
            monitor.close(0)
        for w in workers.values():
            w.close()
        journal.close()


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def reconnects(args, res):
    journal = pbtest.Journal(args.journal, {"clock": "manual"},
                             log_name="pb-it-faults-reconnect")
    try:
        journal.start()

        def run():
            with pbtest.Producer(journal) as p:     # warm up
                assert p.publish(pbtest.envelope(id_="warm"))[0] == "ACK"
            time.sleep(0.5)
            fds0 = fd_count(journal.pid())
            acks, errors = {}, []
            lock = threading.Lock()

            def burst(k):
                try:
                    for i in range(200):
                        with pbtest.Producer(journal, timeout=10) as p:
                            id_ = "r%d-%d" % (k, i)
                            kind, body = p.publish(pbtest.envelope(id_=id_))
                            assert kind == "ACK", body
                            with lock:
                                acks[id_] = body["seq"]
                except Exception as exc:   # noqa: BLE001
                    errors.append(repr(exc))
            threads = [threading.Thread(target=burst, args=(k,))
                       for k in range(3)]
            t0 = time.time()
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            assert not errors, errors[0]
            #  Close without reading the ACK, reconnect, resend
            for i in range(100):
                env = pbtest.envelope(id_="again-%d" % i)
                s = pbtest.CTX.socket(zmq.DEALER)
                s.setsockopt(zmq.LINGER, 2000)
                s.connect(journal.ingest)
                s.send_multipart([env["type"].encode(), pbtest.pack(env)])
                s.close()
                with pbtest.Producer(journal) as p:
                    kind, body = p.publish(env)
                    assert kind == "ACK", body
                    acks[env["id"]] = body["seq"]
            events, end = pbtest.full_log(journal)
            pbtest.check_log_gapless(events, end)
            ids = [e[2]["id"] for e in events]
            assert len(ids) == len(set(ids)), "an event logged twice"
            at = {e[2]["id"]: e[0] for e in events}
            wrong = [i for i, s in acks.items() if at.get(i) != s]
            assert not wrong, "%d ACKs not at their seq: %r" % (
                len(wrong), wrong[:3])
            deadline = time.time() + 10
            while fd_count(journal.pid()) > fds0 + 2 and \
                    time.time() < deadline:
                time.sleep(0.2)
            fds1 = fd_count(journal.pid())
            assert fds1 <= fds0 + 2, "journal fds %d -> %d" % (fds0, fds1)
            print("     700 connections in %.1fs, %d events logged once; "
                  "journal fds %d -> %d" % (time.time() - t0, len(ids),
                                             fds0, fds1), flush=True)
        res.run("a burst of producer reconnects and resends", run)
    finally:
        journal.close()


def journal_restart(args, res, binaries):
    journal = pbtest.Journal(args.journal, {"clock": "manual"},
                             log_name="pb-it-faults-jrestart")
    workers = {}
    try:
        journal.start()
        for name in system.WORKERS:
            workers[name] = system.Worker(name, binaries[name], journal).start()
        steps = scenario.generate(args.seed, 16000)

        def run():
            chunks = [steps[k * 4000:(k + 1) * 4000] for k in range(4)]
            how = ["kill -9", "SIGTERM", "kill -9"]
            t0 = time.time()
            #  One publisher for all (its envelope ids go on); its sockets
            #  reconnect by themselves to the restarted journal
            pub = system.Publisher(journal, window=300)
            for k, chunk in enumerate(chunks):
                pub.run(chunk)
                if k < len(how):
                    #  The workers are still catching up: stop the journal
                    #  under them, and start it again on the same ports
                    if how[k] == "SIGTERM":
                        assert journal.term() == 0
                    else:
                        journal.kill9()
                    time.sleep(random.uniform(0.05, 0.5))
                    journal.start()
                for n, w in workers.items():
                    assert w.alive(), "pb-%s exited %s while the journal " \
                        "restarted; log:\n%s" % (n, w.returncode(),
                                                 w.log_tail())
            pub.close()
            #  Longer than a worker's resend_ms (3 s): a notification left
            #  unACKed by a journal death is resent, and logged, by then
            head = system.wait_quiescent(journal, list(workers.values()),
                                         timeout=240, stable=5.0)
            print("     3 journal restarts (%s) under the workers; head %d "
                  "reached by all in %.0fs" % (", ".join(how), head,
                                                time.time() - t0), flush=True)
            rebuild_equal(journal, binaries, stop_and_dump(workers))
        res.run("journal restarted while the workers run: stores equal a "
                "clean rebuild, no notification twice", run)
    finally:
        for w in workers.values():
            w.close()
        journal.close()


def catchup_restart(args, res, binaries):
    #  Small replay batches, one in flight, small commits: a catch-up of
    #  30,000 events takes long enough to be cut in its middle
    journal = pbtest.Journal(args.journal, {"clock": "manual",
                                            "replay-batch": 50},
                             log_name="pb-it-faults-catchup")
    workers = {}
    rng = random.Random(args.seed)
    try:
        journal.start()

        def run():
            pub = system.Publisher(journal, window=500)
            try:
                pub.run(scenario.generate(args.seed + 1, 30000))
            finally:
                pub.close()
            head = system.status(journal)["head"]
            mid = 0
            tries = 0
            for name in system.WORKERS:
                w = system.Worker(name, binaries[name], journal,
                                  options={"credit": 1, "batch-max": 50})
                workers[name] = w
                kills = 0
                while kills < 3 and tries < 60:
                    tries += 1
                    before = w.applied_seq()
                    if before >= head:
                        break
                    w.start()
                    time.sleep(rng.uniform(0.02, 0.12))
                    assert w.alive(), "pb-%s exited %s; log:\n%s" % (
                        name, w.returncode(), w.log_tail())
                    w.kill9()
                    w.close_log()
                    after = w.applied_seq()
                    if before < after < head:
                        kills += 1
                        mid += 1
                assert kills == 3, "pb-%s: %d kills in the middle of a " \
                    "catch-up (it catches up too fast to be cut)" % (
                        name, kills)
                w.start()
            head = system.wait_quiescent(journal, list(workers.values()),
                                         timeout=240)
            print("     %d kills in the middle of a catch-up of %d events"
                  % (mid, head), flush=True)
            rebuild_equal(journal, binaries, stop_and_dump(workers))
        res.run("workers killed in the middle of a catch-up: stores equal a "
                "clean rebuild", run)
    finally:
        for w in workers.values():
            w.close()
        journal.close()


def extra_only(ap):
    extra_args(ap)
    ap.add_argument("--only", default="",
                    help="comma-separated: reconnects,slow,restart,catchup")


def main():
    args = pbtest.parse_args(extra_only)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    random.seed(args.seed)
    binaries = system.worker_binaries(args.bin_dir)
    res = pbtest.Results("it_faults")
    only = set(filter(None, args.only.split(",")))
    for key, fn in (("reconnects", lambda: reconnects(args, res)),
                    ("slow", lambda: slow_subscriber(args, res, binaries)),
                    ("restart", lambda: journal_restart(args, res, binaries)),
                    ("catchup", lambda: catchup_restart(args, res, binaries))):
        if not only or key in only:
            fn()
    res.finish()


if __name__ == "__main__":
    sys.exit(main())
