#!/usr/bin/python3
"""soak - minutes of mixed load with random kill -9 of every process

    nice -n 10 /usr/bin/python3 tests/soak/soak.py --bin-dir BUILD [--minutes 10]

pb-journal and the three workers run on a generated scenario
(tests/it/scenario.py) published at --rate steps/s by a producer that
resends whatever was not ACKed when the journal dies (idempotent on
(src, id)), while TICKs move the manual clock. The run has two phases:

  chaos   (the first 70%): every few seconds a random process (the journal
          or a worker) is killed -9 and restarted, after a pause of up to
          a second;
  steady  (the last 30%): the same load, no kill. Each process's anonymous
          resident memory (RssAnon), open file descriptors and the LMDB
          reader tables are sampled at the start and at the end of it.

At the end it checks and prints:
  - every ACKed (src, id) is in the log exactly once, at its ACKed seq, and
    the log is gapless;
  - every worker store equals a clean rebuild from the log (fresh workers
    on empty stores), byte for byte, and no notification is logged twice;
  - RssAnon of each process grew less than 1 MiB per ten minutes over the
    steady phase (extrapolated), its fd count did not grow, and no reader
    slot of a dead process is left in any environment (mdb_stat -r).
Exit status 0 when all hold. The summary lists the figures.
"""

import argparse
import collections
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "it"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "faults"))

import pbtest      # noqa: E402
import scenario    # noqa: E402
import system      # noqa: E402
import zmq         # noqa: E402
from it_faults import rebuild_equal   # noqa: E402


class Producer(threading.Thread):
    """Publishes the scenario at a rate; survives journal restarts by
    resending every unACKed event (and retrying a TICK) on a new socket."""

    def __init__(self, journal, steps, rate, rng):
        super().__init__(daemon=True)
        self.journal = journal
        self.steps = steps
        self.rate = rate
        self.rng = rng
        self.envs = scenario.Envelopes()
        self.acked = {}                 # (src, id) -> seq
        self.resends = 0
        self.ticks = 0
        self.naks = []
        self.stop = threading.Event()
        self.error = None
        self.done_steps = 0

    def _socket(self):
        s = pbtest.CTX.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.SNDHWM, 0)
        s.setsockopt(zmq.RCVHWM, 0)
        s.connect(self.journal.ingest)
        return s

    def _tick(self, now):
        while not self.stop.is_set():
            try:
                with pbtest.Replayer(self.journal, timeout=2) as r:
                    kind, body = r.tick(now)
                if kind == "TICKED" or (kind == "ERROR"
                                        and body.get("code") == "backwards"):
                    self.ticks += 1
                    return
            except (TimeoutError, zmq.ZMQError):
                pass
            time.sleep(0.1)

    def run(self):
        try:
            self._run()
        except Exception as exc:   # noqa: BLE001
            self.error = repr(exc)

    def _run(self):
        sock = self._socket()
        inflight = collections.OrderedDict()    # id -> (type, bytes)
        last_reply = time.monotonic()
        t0 = time.monotonic()
        i = 0
        while not self.stop.is_set() and i < len(self.steps):
            due = t0 + i / self.rate
            step = self.steps[i]
            if step[0] == "tick":
                #  Every event before it answered first (drain)
                if inflight and time.monotonic() - last_reply < 3:
                    pass
                elif not inflight:
                    self._tick(step[1])
                    i += 1
                    continue
            elif time.monotonic() >= due and len(inflight) < 200:
                env = self.envs.envelope(step[1], step[2])
                body = pbtest.pack(env)
                inflight[env["id"]] = (step[1], body, env["src"])
                sock.send_multipart([step[1].encode(), body])
                i += 1
                self.done_steps = i
            if sock.poll(5):
                frames = sock.recv_multipart()
                reply = pbtest.unpack(frames[1])
                last_reply = time.monotonic()
                id_ = reply.get("id")
                if id_ in inflight:
                    _, _, src = inflight.pop(id_)
                    if frames[0] == b"ACK":
                        self.acked[(src, id_)] = reply["seq"]
                    else:
                        self.naks.append(reply)
            elif inflight and time.monotonic() - last_reply > 3:
                #  The journal died: a new socket, everything unACKed again
                sock.close(0)
                sock = self._socket()
                for t, body, _ in inflight.values():
                    sock.send_multipart([t.encode(), body])
                    self.resends += 1
                last_reply = time.monotonic()
        #  Drain
        deadline = time.monotonic() + 60
        while inflight and time.monotonic() < deadline:
            if sock.poll(500):
                frames = sock.recv_multipart()
                reply = pbtest.unpack(frames[1])
                id_ = reply.get("id")
                if id_ in inflight:
                    _, _, src = inflight.pop(id_)
                    if frames[0] == b"ACK":
                        self.acked[(src, id_)] = reply["seq"]
                    else:
                        self.naks.append(reply)
                last_reply = time.monotonic()
            elif time.monotonic() - last_reply > 3:
                sock.close(0)
                sock = self._socket()
                for t, body, _ in inflight.values():
                    sock.send_multipart([t.encode(), body])
                    self.resends += 1
                last_reply = time.monotonic()
        sock.close(0)
        if inflight:
            self.error = "%d events never ACKed" % len(inflight)


def proc_status(pid):
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("RssAnon", "VmRSS", "VmHWM"):
                    out[k] = int(v.split()[0])
        out["fds"] = len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None
    return out


def reader_pids(env_dir):
    out = subprocess.run(["mdb_stat", "-r", env_dir], capture_output=True,
                         text=True, timeout=20).stdout
    return [int(m.group(1)) for m in
            re.finditer(r"^\s*(\d+)\s+[0-9a-f]+\s+\S+", out, re.M)]


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=400.0,
                    help="scenario steps per second")
    ap.add_argument("--kill-every", type=float, default=4.0,
                    help="mean seconds between kills in the chaos phase")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rng = random.Random(args.seed)
    total = args.minutes * 60
    chaos_end = time.time() + 0.7 * total
    end = time.time() + total
    binaries = system.worker_binaries(args.bin_dir)
    journal = pbtest.Journal(pbtest.find_journal(args.bin_dir),
                             {"clock": "manual"}, log_name="pb-soak")
    workers = {}
    failures = []
    kills = collections.Counter()
    figures = {}
    steps = scenario.generate(args.seed, int(args.rate * total * 1.2) + 1000)
    producer = None
    try:
        journal.start()
        for name in system.WORKERS:
            workers[name] = system.Worker(name, binaries[name], journal).start()
        producer = Producer(journal, steps, args.rate, rng)
        producer.start()
        t_start = time.time()
        print("soak: %.1f min, %.0f steps/s, chaos until %.0fs, steady "
              "after" % (args.minutes, args.rate, 0.7 * total), flush=True)
        next_kill = time.time() + rng.expovariate(1 / args.kill_every)
        last_print = time.time()
        while time.time() < chaos_end and not producer.error:
            time.sleep(0.1)
            for n, w in workers.items():
                if not w.alive():
                    failures.append("pb-%s exited %s on its own; log:\n%s"
                                    % (n, w.returncode(), w.log_tail()))
            if not journal.alive():
                failures.append("pb-journal exited %s on its own; log:\n%s"
                                % (journal.proc.returncode,
                                   journal.log_tail()))
            if failures:
                break
            if time.time() >= next_kill:
                victim = rng.choice(("journal",) + system.WORKERS)
                if victim == "journal":
                    journal.kill9()
                    time.sleep(rng.uniform(0, 1))
                    journal.start(timeout=30)
                else:
                    w = workers[victim]
                    w.kill9()
                    w.close_log()
                    time.sleep(rng.uniform(0, 1))
                    w.start()
                kills[victim] += 1
                next_kill = time.time() + rng.expovariate(1 / args.kill_every)
            if time.time() - last_print > 30:
                last_print = time.time()
                print("  %4.0fs chaos: %d ACKed, %d kills (%s)" % (
                    time.time() - t_start, len(producer.acked),
                    sum(kills.values()), ", ".join(
                        "%s %d" % kv for kv in sorted(kills.items()))),
                    flush=True)
        #  Steady phase: let everyone settle, then sample
        time.sleep(5)
        procs = {"journal": journal.proc.pid}
        procs.update({n: w.proc.pid for n, w in workers.items()})
        first = {n: proc_status(p) for n, p in procs.items()}
        t_first = time.time()
        while time.time() < end and not failures and not producer.error:
            time.sleep(1)
            for n, p in procs.items():
                if not alive(p):
                    failures.append("%s died in the steady phase" % n)
            if time.time() - last_print > 30:
                last_print = time.time()
                print("  %4.0fs steady: %d ACKed" % (
                    time.time() - t_start, len(producer.acked)), flush=True)
        last = {n: proc_status(p) for n, p in procs.items()}
        t_last = time.time()
        producer.stop.set()
        producer.join(120)
        if producer.error:
            failures.append("producer: " + producer.error)
        if producer.naks:
            failures.append("%d NAKs, e.g. %r" % (len(producer.naks),
                                                  producer.naks[:2]))
        steady = t_last - t_first
        for n in procs:
            a, b = first.get(n), last.get(n)
            if not a or not b:
                failures.append("%s: no memory sample" % n)
                continue
            grow = (b["RssAnon"] - a["RssAnon"]) * 600.0 / max(steady, 1)
            figures[n] = (a["RssAnon"], b["RssAnon"], grow, a["fds"],
                          b["fds"], b["VmHWM"])
            if grow >= 1024:
                failures.append("%s: RssAnon %d -> %d kB in %.0fs, %.0f kB "
                                "per 10 min" % (n, a["RssAnon"], b["RssAnon"],
                                                steady, grow))
            if b["fds"] > a["fds"] + 2:
                failures.append("%s: fds %d -> %d" % (n, a["fds"], b["fds"]))
        #  Reader slots: only live processes in every environment
        envs = {"journal": os.path.join(journal.data_dir, "log")}
        envs.update({n: w.store_dir for n, w in workers.items()})
        readers = {}
        for n, d in envs.items():
            pids = reader_pids(d)
            dead = [p for p in pids if not alive(p)]
            readers[n] = (len(pids), dead)
            if dead:
                failures.append("%s: reader slots of dead pids %r" % (n, dead))
        #  Nothing lost, nothing twice
        head = system.wait_quiescent(journal, list(workers.values()),
                                     timeout=300)
        events, endmap = pbtest.full_log(journal, timeout=120)
        pbtest.check_log_gapless(events, endmap)
        at = {}
        twice = 0
        for seq, _, env, _ in events:
            key = (env.get("src"), env.get("id"))
            if key in at:
                twice += 1
            at[key] = seq
        lost = [k for k, s in producer.acked.items() if at.get(k) != s]
        if lost:
            failures.append("%d ACKed events not in the log at their seq, "
                            "e.g. %r" % (len(lost), lost[:3]))
        if twice:
            failures.append("%d events logged twice" % twice)
        dumps = {}
        for n, w in workers.items():
            if w.term() != 0:
                failures.append("pb-%s: bad exit on SIGTERM" % n)
            dumps[n] = w.dump()
        try:
            rebuild_equal(journal, binaries, dumps)
            rebuilt = "equal"
        except AssertionError as exc:
            rebuilt = "DIFFERENT"
            failures.append(str(exc)[:2000])
        print("\nsoak summary (%.1f min: %.0fs chaos, %.0fs steady)" % (
            (time.time() - t_start) / 60, 0.7 * total, steady))
        print("  load: %d scenario steps, %d events ACKed, %d TICKs, %d "
              "resends after journal deaths" % (
                  producer.done_steps, len(producer.acked), producer.ticks,
                  producer.resends))
        print("  kills: %d (%s)" % (sum(kills.values()), ", ".join(
            "%s %d" % kv for kv in sorted(kills.items()))))
        print("  log: head %d, gapless, %d events logged twice, %d ACKed "
              "events missing" % (head, twice, len(lost)))
        print("  worker stores vs clean rebuild: %s" % rebuilt)
        print("  %-9s %10s %10s %14s %8s %8s" % (
            "process", "RssAnon kB", "-> kB", "kB per 10 min", "fds", "VmHWM"))
        for n, (a, b, g, fa, fb, hwm) in figures.items():
            print("  %-9s %10d %10d %14.0f %4d->%-3d %8d" % (n, a, b, g, fa,
                                                              fb, hwm))
        print("  reader slots: %s" % ", ".join(
            "%s %d (dead %d)" % (n, c, len(d))
            for n, (c, d) in readers.items()))
        print("soak: %s" % ("PASS" if not failures else "FAIL"))
        for f in failures:
            print("  FAIL " + f)
        return 0 if not failures else 1
    finally:
        if producer:
            producer.stop.set()
        for w in workers.values():
            w.close()
        journal.close()


if __name__ == "__main__":
    sys.exit(main())
