#!/usr/bin/python3
"""it_worker_crash - nothing is applied twice, nothing is published twice,
whatever instant a worker dies at (ARCHITECTURE.md, invariants 1 and 2)

pb-journal (manual clock) and the three workers run while a generated
scenario (tests/it/scenario.py) is published. Each worker is killed again
and again, at least --kills times (30 by default):
  - kill -9 at a random moment under load, and
  - at the runtime's named crash points, by restarting it with
    PB_CRASH=worker_before_commit:n, worker_after_commit:n or
    worker_mid_catchup:n (common/pb_worker_store.c, pb_worker.c), which
    SIGKILL the process the n-th time it gets there.
Any other exit of a worker is a failure. Then every worker restarts
without crash points and reaches the head; the stores it ends with must
equal those of a clean replay (a fresh worker on an empty dir, its ingest
through a recording proxy), byte for byte; the log must hold every
notification exactly once: no (src, id) twice, and the multiset of
(type, cause, data) equal to what the clean replay publishes.

Usage: it_worker_crash.py --bin-dir BUILD [--kills N] [--seed N]
"""

import collections
import os
import random
import signal
import sys
import threading
import time

import pbtest
import scenario
import system

CRASH_POINTS = ("worker_before_commit", "worker_after_commit",
                "worker_mid_catchup")


def extra_args(ap):
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--kills", type=int, default=30,
                    help="deaths per worker, at least")
    ap.add_argument("--count", type=int, default=60000,
                    help="scenario steps at most (publishing stops when "
                         "every worker died --kills times)")
    ap.add_argument("--rate", type=float, default=1500.0,
                    help="steps/s offered while killing")
    ap.add_argument("--timeout", type=float, default=240.0)


class Chaos:
    """Kills and restarts one worker; counts its deaths by cause."""

    def __init__(self, worker, rng):
        self.worker = worker
        self.rng = rng
        self.deaths = collections.Counter()
        self.armed = None               # crash point of the current run
        self.kill_at = None
        self.down = False               # dead and left so
        self.restart_at = None          # restart when (monotonic)

    def start(self):
        env = None
        self.armed = None
        if self.rng.random() < 0.6:
            point = self.rng.choice(CRASH_POINTS)
            #  A catch-up has few batches: its point is armed early
            n = self.rng.randrange(1, 3 if point == "worker_mid_catchup"
                                   else 9)
            self.armed = point
            env = {"PB_CRASH": "%s:%d" % (point, n)}
        self.worker.start(env)
        #  A random kill too, later than the crash point usually hits
        self.kill_at = time.monotonic() + self.rng.uniform(
            0.05, 1.5 if self.armed else 0.8)

    def total(self):
        return sum(self.deaths.values())

    def step(self, killing):
        """Called often: restart a dead worker, kill a live one when due.
        Returns an error string when the worker died on its own."""
        w = self.worker
        if self.down:
            return None
        if self.restart_at is not None:
            if time.monotonic() >= self.restart_at:
                self.restart_at = None
                self.start()
            return None
        if not w.alive():
            rc = w.returncode()
            if rc != -9 or not self.armed:
                return "pb-%s exited %s (not a kill nor a crash point); " \
                       "log:\n%s" % (w.name, rc, w.log_tail())
            self.deaths[self.armed] += 1
            w.close_log()
        elif time.monotonic() >= self.kill_at:
            w.kill9()
            w.close_log()
            self.deaths["kill -9"] += 1
        else:
            return None
        if not killing:
            self.down = True
        elif self.rng.random() < 0.3:
            #  Down for a while: the log runs ahead, the restart catches
            #  up over several replay batches (worker_mid_catchup)
            self.restart_at = time.monotonic() + self.rng.uniform(0.3, 1.5)
        else:
            self.start()
        return None


def main():
    args = pbtest.parse_args(extra_args)
    #  SIGTERM (ctest's timeout) unwinds: processes and dirs are cleaned up
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    binaries = system.worker_binaries(args.bin_dir)
    rng = random.Random(args.seed)
    res = pbtest.Results("it_worker_crash")
    steps = scenario.generate(args.seed, args.count)
    journal = pbtest.Journal(args.journal, {"clock": "manual"},
                             log_name="pb-it-worker-crash")
    workers = {}
    clean = {}
    proxies = {}
    state = {}
    try:
        journal.start()
        for name in system.WORKERS:
            workers[name] = system.Worker(name, binaries[name], journal)

        def chaos():
            chaoses = {n: Chaos(w, random.Random(rng.random()))
                       for n, w in workers.items()}
            for c in chaoses.values():
                c.start()
            stop = threading.Event()
            failure = []

            def publish():
                pub = system.Publisher(journal, window=200)
                try:
                    t0 = time.monotonic()
                    for i, step in enumerate(steps):
                        if stop.is_set():
                            break
                        delay = t0 + i / args.rate - time.monotonic()
                        if delay > 0.001:
                            pub.drain()
                            time.sleep(delay)
                        if step[0] == "tick":
                            pub.tick(step[1])
                        else:
                            pub.event(step[1], step[2])
                    pub.drain()
                    state["published"] = (pub.acked, pub.ticks)
                    if pub.naks:
                        failure.append("NAKs: %r" % pub.naks[:3])
                except Exception as exc:   # noqa: BLE001
                    failure.append("publisher: %r" % exc)
                finally:
                    pub.close()

            t = threading.Thread(target=publish, daemon=True)
            t0 = time.time()
            t.start()
            while time.time() - t0 < args.timeout and not failure:
                done = all(c.total() >= args.kills for c in chaoses.values())
                for c in chaoses.values():
                    err = c.step(killing=c.total() < args.kills)
                    if err:
                        failure.append(err)
                if done:
                    break
                if not t.is_alive():
                    failure.append("the scenario ran out before every "
                                   "worker died %d times (raise --count)"
                                   % args.kills)
                time.sleep(0.02)
            stop.set()
            t.join(60)
            for n, c in chaoses.items():
                print("     pb-%s: %d deaths (%s), %d starts" % (
                    n, c.total(), ", ".join("%s %d" % kv for kv in
                                            sorted(c.deaths.items())),
                    c.worker.starts), flush=True)
            print("     published %s (events, ticks) in %.1fs" % (
                state.get("published"), time.time() - t0), flush=True)
            assert not failure, failure[0]
            for c in chaoses.values():
                assert c.total() >= args.kills, "pb-%s died %d times" % (
                    c.worker.name, c.total())
            for w in workers.values():
                if w.alive():
                    w.kill9()
                w.close_log()
        if not res.run("kill the workers %d times each under load"
                       % args.kills, chaos):
            res.finish()

        def recover():
            for w in workers.values():
                w.start()
            head = system.wait_quiescent(journal, list(workers.values()),
                                         timeout=120)
            state["head"] = head
            for w in workers.values():
                state["dump-" + w.name] = w.dump()
                assert w.term() == 0, "pb-%s: bad exit on SIGTERM" % w.name
            events, end = pbtest.full_log(journal, timeout=60)
            pbtest.check_log_gapless(events, end)
            print("     recovered: head %d" % head)
        if not res.run("restarted workers reach the head", recover):
            res.finish()

        def clean_replay():
            head = state["head"]
            for name in system.WORKERS:
                proxies[name] = system.IngestProxy(journal)
                clean[name] = system.Worker(
                    name, binaries[name], journal,
                    ingest=proxies[name].endpoint).start()
            for name in system.WORKERS:
                system.wait_applied(clean[name], head, timeout=120)
            deadline = time.time() + 30
            while time.time() < deadline:
                if all(len(p.answers) == len({e["id"] for _, e in p.sent})
                       for p in proxies.values()):
                    break
                time.sleep(0.2)
            time.sleep(0.5)
            assert system.status(journal)["head"] == head, \
                "the clean replay grew the log"
        if not res.run("clean replay on empty stores", clean_replay):
            res.finish()

        def same_store(name):
            got = clean[name].dump()
            want = state["dump-" + name]
            assert got == want, "pb-%s store after crashes differs from a " \
                "clean replay: %s" % (name, system.dump_diff(got, want))
        for name in system.WORKERS:
            res.run("pb-%s store == clean replay" % name, same_store, name)

        def once():
            notes = system.notifications(journal)
            expected = collections.Counter()
            for name, proxy in proxies.items():
                by_id = {}
                for _, env in proxy.sent:
                    by_id[env["id"]] = env
                for env in by_id.values():
                    expected[system.content_key(env)] += 1
                logged = {system.note_key(n) for n in notes
                          if n["src"] == name}
                published = {system.note_key(e) for e in by_id.values()}
                assert logged == published, (
                    "pb-%s: log has %d notifications, a clean replay "
                    "publishes %d (%d differ)" % (
                        name, len(logged), len(published),
                        len(logged ^ published)))
            system.check_no_duplicate_notifications(notes, expected)
            print("     %d notifications, each once" % len(notes))
        res.run("every notification logged exactly once", once)
    finally:
        keep = bool(os.environ.get("PB_IT_KEEP"))
        for w in list(workers.values()) + list(clean.values()):
            if keep:
                print("     kept %s (log %s)" % (w.data_dir, w.log_path))
            w.close(keep=keep)
        for p in proxies.values():
            p.close()
        journal.close()
    res.finish()


if __name__ == "__main__":
    sys.exit(main())
