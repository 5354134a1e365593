#!/usr/bin/python3
"""it_worker_crash - nothing is applied twice, nothing is published twice,
whatever instant a worker dies at (ARCHITECTURE.md, invariants 1 and 2)

pb-journal (manual clock) and the three workers run while a generated
scenario (tests/it/scenario.py) is published. Each worker is killed again
and again, at least --kills times (30 by default, never fewer than 20),
its runs alternating (class Chaos):
  - a crash run: restarted with PB_CRASH=<point>:n, the points
    worker_before_commit, worker_after_commit and worker_mid_catchup
    (common/pb_worker_store.c, pb_worker.c) taken in turn, which SIGKILL
    the process the n-th time it gets there; the turn moves on only when
    the point fired, so each worker dies at each point, and
  - a kill -9 at a random moment under load.
Asserted per worker: at least max(--kills, 20) deaths in all, and at
least one death at each of the three points, each put down to its point
only on evidence (died of a SIGKILL the test did not send, with only that
point armed; inside a catch-up by its log for worker_mid_catchup; with the
batch committed for worker_after_commit; see Chaos). Any other exit of a
worker is a failure. Then every worker restarts without crash points and
reaches the head; the stores it ends with must equal those of a clean
replay (a fresh worker on an empty dir, its ingest through a recording
proxy), byte for byte; the log must hold every notification exactly once:
the multiset of (type, cause, data) equal to what the clean replay
publishes (no (src, id) twice is asserted too, but cannot fail while the
journal deduplicates ids).

Usage: it_worker_crash.py --bin-dir BUILD [--kills N] [--seed N]
"""

import collections
import os
import random
import re
import signal
import sys
import threading
import time

import pbtest
import scenario
import system

CRASH_POINTS = ("worker_before_commit", "worker_after_commit",
                "worker_mid_catchup")

#  Issue 3: every worker dies at least this often in CI, whatever --kills
MIN_DEATHS = 20

#  A crash run the point has not ended after this long is killed -9 (and
#  its point armed again at the next crash run)
FALLBACK_S = (2.0, 3.0)


def extra_args(ap):
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--kills", type=int, default=30,
                    help="deaths per worker, at least (never fewer than %d)"
                         % MIN_DEATHS)
    ap.add_argument("--count", type=int, default=60000,
                    help="scenario steps at most (publishing stops when "
                         "every worker died --kills times and at each "
                         "crash point)")
    ap.add_argument("--rate", type=float, default=1500.0,
                    help="steps/s offered while killing")
    ap.add_argument("--timeout", type=float, default=240.0)


class Chaos:
    """Kills and restarts one worker; counts its deaths by cause.

    Its runs alternate, deterministically: a crash run, started with
    PB_CRASH=<point>:n for the next point of the cycle CRASH_POINTS (n
    drawn), then a run killed -9 at a random moment under load. The cycle
    moves on only when the point fired, so each point fires for each
    worker within the first 2 * len(CRASH_POINTS) runs unless the point is
    not reached; a crash run that the point has not ended after
    FALLBACK_S is killed -9 instead (counted as a kill) and the point is
    armed again at the next crash run. Before a worker_mid_catchup run
    the worker stays down for a while, so that the log runs ahead and the
    restart catches up over several replay batches.

    A death is put down to a crash point only on evidence: pb_crash_point
    logs nothing and raise()s SIGKILL (common/pb_crash.c), the only
    SIGKILL a worker gives itself, so the process must have died of
    SIGKILL (returncode -9) in a run that named that point, and only that
    point, in PB_CRASH, without the test having signalled it; its log of
    that run must show it started and not stopping; and, for the two
    points with an observable effect, worker_mid_catchup: the run's last
    'catching up from=' line comes after its last 'caught up' (it died
    inside a catch-up), worker_after_commit: the store's applied_seq after
    the death is above the run's 'started applied_seq=' (the batch it
    died after is committed). Anything else is a failure."""

    def __init__(self, worker, rng, target):
        self.worker = worker
        self.rng = rng
        self.target = target
        self.deaths = collections.Counter()     # "kill -9" or the point
        self.missed = collections.Counter()     # crash runs killed instead
        self.cycle = 0                  # CRASH_POINTS index of next crash run
        self.runs = 0
        self.run = None                 # the current run
        self.plan = self._plan()        # (point or None, n) of the next run
        self.kill_at = None
        self.down = False               # dead and left so
        self.restart_at = None          # restart when (monotonic)

    def _plan(self):
        if self.runs % 2:
            return None, 0
        point = CRASH_POINTS[self.cycle % len(CRASH_POINTS)]
        #  A catch-up has few batches: its point is armed early
        return point, self.rng.randrange(
            1, 3 if point == "worker_mid_catchup" else 9)

    def start(self):
        point, n = self.plan
        env = {"PB_CRASH": "%s:%d" % (point, n)} if point else None
        try:
            offset = os.path.getsize(self.worker.log_path)
        except OSError:
            offset = 0
        self.worker.start(env)
        self.runs += 1
        self.run = {"point": point, "n": n, "log_offset": offset,
                    "signalled": False}
        #  A random kill; in a crash run, a late one, only if the point
        #  did not end the run first
        self.kill_at = time.monotonic() + (
            self.rng.uniform(*FALLBACK_S) if point
            else self.rng.uniform(0.05, 0.8))

    def total(self):
        return sum(self.deaths.values())

    def needs_more(self):
        return self.total() < self.target or \
            any(self.deaths[p] == 0 for p in CRASH_POINTS)

    def _run_log(self):
        try:
            with open(self.worker.log_path, "rb") as f:
                f.seek(self.run["log_offset"])
                return f.read()
        except OSError:
            return b""

    def _evidence(self):
        """None if the death of the current run is its crash point's, else
        why not."""
        run, w = self.run, self.worker
        point = run["point"]
        what = "pb-%s died of SIGKILL with PB_CRASH=%s:%d" % (
            w.name, point, run["n"])
        log = self._run_log()
        started = re.findall(rb"started applied_seq=(\d+)", log)
        if not started:
            return "%s before it logged 'started'; log:\n%s" % (
                what, w.log_tail())
        if b"stopping applied_seq=" in log:
            return "%s after it logged 'stopping'; log:\n%s" % (
                what, w.log_tail())
        if point == "worker_mid_catchup":
            catching = log.rfind(b"catching up from=")
            caught = log.rfind(b"caught up applied_seq=")
            if catching < 0 or caught > catching:
                return "%s outside a catch-up (last 'catching up' at %d, " \
                       "'caught up' at %d in the run's log); log:\n%s" % (
                           what, catching, caught, w.log_tail())
        if point == "worker_after_commit":
            seq = w.applied_seq()
            if seq is None or seq <= int(started[-1]):
                return "%s, but its store's applied_seq %s is not above " \
                       "the %s it started at: no batch committed" % (
                           what, seq, int(started[-1]))
        return None

    def step(self, killing):
        """Called often: restart a dead worker, kill a live one when due.
        Returns an error string when the worker died otherwise than by the
        test's kill -9 or the crash point armed."""
        w = self.worker
        if self.down:
            return None
        if self.restart_at is not None:
            if time.monotonic() >= self.restart_at:
                self.restart_at = None
                self.start()
            return None
        if w.alive() and time.monotonic() >= self.kill_at:
            #  Marked before the signal: a crash point that fires in
            #  between is counted as a kill, never the other way round
            self.run["signalled"] = True
            w.kill9()
        elif w.alive():
            return None
        rc = w.wait_exit(10)
        run = self.run
        if rc != -signal.SIGKILL:
            return "pb-%s exited %s (not a kill nor a crash point); " \
                   "log:\n%s" % (w.name, rc, w.log_tail())
        if run["signalled"]:
            self.deaths["kill -9"] += 1
            if run["point"]:
                self.missed[run["point"]] += 1
        elif not run["point"]:
            return "pb-%s died of a SIGKILL nobody sent, no crash point " \
                   "armed; log:\n%s" % (w.name, w.log_tail())
        else:
            err = self._evidence()
            if err:
                return err
            self.deaths[run["point"]] += 1
            self.cycle += 1
        w.close_log()
        if not killing:
            self.down = True
            return None
        self.plan = self._plan()
        if self.plan[0] == "worker_mid_catchup" or self.rng.random() < 0.3:
            #  Down for a while: the log runs ahead, the restart catches
            #  up over several replay batches (worker_mid_catchup)
            self.restart_at = time.monotonic() + self.rng.uniform(0.3, 1.2)
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

        target = max(args.kills, MIN_DEATHS)

        def chaos():
            chaoses = {n: Chaos(w, random.Random(rng.random()), target)
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
                done = all(not c.needs_more() for c in chaoses.values())
                for c in chaoses.values():
                    err = c.step(killing=c.needs_more())
                    if err:
                        failure.append(err)
                if done:
                    break
                if not t.is_alive():
                    failure.append("the scenario ran out before every "
                                   "worker died %d times and at each crash "
                                   "point (raise --count)" % target)
                time.sleep(0.02)
            stop.set()
            t.join(60)
            for n, c in chaoses.items():
                print("     pb-%s: %d deaths (%s), %d starts; crash runs "
                      "killed before their point: %s" % (
                          n, c.total(), ", ".join(
                              "%s %d" % kv for kv in sorted(c.deaths.items())),
                          c.worker.starts, dict(c.missed) or "none"),
                      flush=True)
            print("     published %s (events, ticks) in %.1fs" % (
                state.get("published"), time.time() - t0), flush=True)
            assert not failure, failure[0]
            for c in chaoses.values():
                assert c.total() >= target, "pb-%s died %d times, not %d" % (
                    c.worker.name, c.total(), target)
                for p in CRASH_POINTS:
                    assert c.deaths[p] >= 1, "pb-%s never died at %s " \
                        "(deaths: %r)" % (c.worker.name, p, dict(c.deaths))
            for w in workers.values():
                if w.alive():
                    w.kill9()
                w.close_log()
        if not res.run("kill the workers %d times each under load, at "
                       "each crash point" % target, chaos):
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
            for name, proxy in proxies.items():
                by_id = {}
                for _, env in proxy.sent:
                    by_id[env["id"]] = env
                logged = {system.note_key(n) for n in notes
                          if n["src"] == name}
                published = {system.note_key(e) for e in by_id.values()}
                assert logged == published, (
                    "pb-%s: log has %d notifications, a clean replay "
                    "publishes %d (%d differ)" % (
                        name, len(logged), len(published),
                        len(logged ^ published)))
            #  (src, id) cannot repeat (the journal dedups ids); the
            #  content, (type, cause, data), is what a worker that applied
            #  an event twice would repeat: its multiset must be the clean
            #  replay's (system.check_no_duplicate_notifications)
            system.check_no_duplicate_notifications(
                notes, system.published_contents(proxies.values()))
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
