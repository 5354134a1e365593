#!/usr/bin/python3
"""it_powercut - a power cut loses nothing that was ACKed, and every store
opens again (issue 5, Power loss)

pb_powercut.so (LD_PRELOAD, pb_powercut.c) records the writes each process
makes to its data directory since the last fsync/fdatasync (a write
through an O_DSYNC descriptor, as LMDB writes its meta page, counts as
synced). After a kill -9, powercut.cut() undoes all of them, or a random
half of their 512-byte sectors, as a disk that lost its cache would, and
only then is the process restarted.

  journal   --journal-cuts times (default 150): producers pipeline events,
            the journal is killed at a random moment and its log cut (modes
            "all" and "subset" in turn); after the restart every ACKed
            (src, id) is in the log once, at its seq, gapless; the whole log
            is checked every 25 cuts and at the end.
  workers   --worker-cuts times in all (default 60, spread over pb-nac,
            pb-cpe and pb-activity): a scenario is published while workers
            are killed and their stores cut; each must open again (a worker
            that exits on its own fails the test), and at the end every
            store equals a clean rebuild from the log, byte for byte, and
            no notification is logged twice.
  control   the journal with PB_TEST_LOG_NOSYNC=1 (MDB_NOSYNC, a test-only
            switch of the crash-point build): the same cuts MUST lose ACKed
            events, or this harness could not see a loss at all.

Usage: it_powercut.py --bin-dir BUILD --shim pb_powercut.so
       [--journal-cuts N] [--worker-cuts N] [--seed N]
"""

import os
import random
import shutil
import signal
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "it"))

import pbtest      # noqa: E402
import powercut    # noqa: E402
import scenario    # noqa: E402
import system      # noqa: E402


def extra_args(ap):
    ap.add_argument("--shim", required=True, help="path of pb_powercut.so")
    ap.add_argument("--journal-cuts", type=int, default=150)
    ap.add_argument("--worker-cuts", type=int, default=60)
    ap.add_argument("--control-cuts", type=int, default=5)
    ap.add_argument("--seed", type=int, default=11)


class CutJournal:
    """A journal under the shim, cut again and again; what it ACKed."""

    def __init__(self, args, rng, extra_env=None, name="pb-it-powercut"):
        self.rng = rng
        self.journal = pbtest.Journal(args.journal, {"clock": "manual"},
                                      log_name=name)
        self.undo_dir = tempfile.mkdtemp(prefix="pb-powercut-")
        self.undo = os.path.join(self.undo_dir, "journal.undo")
        self.env = powercut.env_for(self.journal.data_dir, self.undo,
                                    os.path.abspath(args.shim))
        self.env.update(extra_env or {})
        self.acked = {}                 # (src, id) -> seq
        self.cuts = 0
        self.undone = self.kept = 0
        self.sent = 0
        self.lost = []

    def start(self):
        self.journal.start(env=self.env, timeout=20)

    def load_and_cut(self, mode):
        """Publish for a random while, kill -9, cut; returns the ACKs of
        this round."""
        round_acks = {}
        with pbtest.Producer(self.journal, timeout=5) as p:
            inflight = []
            deadline = time.monotonic() + self.rng.uniform(0.02, 0.25)
            n = 0
            while time.monotonic() < deadline:
                while len(inflight) < 64:
                    env = pbtest.envelope("activity.feedback",
                                          "c%d-%d" % (self.cuts, n), "pc")
                    p.send(env)
                    inflight.append(env["id"])
                    n += 1
                while inflight and p.poll(1):
                    kind, body = p.recv()
                    assert kind == "ACK", "NAK %r" % body
                    assert body["id"] == inflight[0]
                    round_acks[("pc", inflight.pop(0))] = body["seq"]
            self.journal.kill9()
            #  ACKs that reached our socket before the kill are ACKs too
            while inflight and p.poll(30):
                kind, body = p.recv()
                assert kind == "ACK", "NAK %r" % body
                round_acks[("pc", inflight.pop(0))] = body["seq"]
            self.sent += n
        _, undone, kept = powercut.cut(self.undo, mode, self.rng)
        self.undone += undone
        self.kept += kept
        self.cuts += 1
        self.acked.update(round_acks)
        return round_acks

    def check(self, acks, full=False):
        """Every ACK of 'acks' (or all ACKs, with full) in the log once, at
        its seq; the range read gapless. Returns the (src, id) missing."""
        wanted = self.acked if full else acks
        if not wanted:
            return []
        frm = 1 if full else min(wanted.values())
        with pbtest.Replayer(self.journal, timeout=30) as r:
            events, end, _ = r.replay(frm)
        seqs = [e[0] for e in events]
        assert seqs == list(range(frm, frm + len(seqs))), \
            "the log from %d is not gapless" % frm
        at = {}
        for seq, _, env, _ in events:
            key = (env.get("src"), env.get("id"))
            assert key not in at, "%r logged twice (seqs %d, %d)" % (
                key, at[key], seq)
            at[key] = seq
        missing = [k for k, s in wanted.items() if at.get(k) != s]
        return missing

    def close(self):
        self.journal.close()
        shutil.rmtree(self.undo_dir, ignore_errors=True)


def journal_cuts(args, res, rng):
    cj = CutJournal(args, random.Random(rng.random()))
    t0 = time.time()
    try:
        def run():
            cj.start()
            for i in range(args.journal_cuts):
                mode = "all" if i % 2 == 0 else "subset"
                acks = cj.load_and_cut(mode)
                try:
                    cj.start()
                except RuntimeError as exc:
                    raise AssertionError(
                        "cut %d (%s): the journal does not start: %s"
                        % (i, mode, exc))
                full = (i + 1) % 25 == 0 or i == args.journal_cuts - 1
                missing = cj.check(acks, full=full)
                assert not missing, \
                    "cut %d (%s): %d ACKed events lost, e.g. %r" % (
                        i, mode, len(missing), missing[:3])
            print("     %d power cuts in %.0fs: %d events sent, %d ACKed, "
                  "%d sectors undone, %d kept; log head %d" % (
                      cj.cuts, time.time() - t0, cj.sent, len(cj.acked),
                      cj.undone, cj.kept,
                      pbtest.full_log(cj.journal)[1]["head"]), flush=True)
        res.run("journal: %d power cuts lose no ACKed event and the log "
                "opens" % args.journal_cuts, run)
    finally:
        cj.close()


def negative_control(args, res, rng):
    cj = CutJournal(args, random.Random(rng.random()),
                    extra_env={"PB_TEST_LOG_NOSYNC": "1"},
                    name="pb-it-powercut-control")
    try:
        def run():
            cj.start()
            lost = 0
            for i in range(args.control_cuts):
                acks = cj.load_and_cut("all")
                cj.start()
                lost += len(cj.check(acks))
            assert lost > 0, \
                "with MDB_NOSYNC, %d cuts lost no ACKed event: the harness " \
                "cannot see a loss" % args.control_cuts
            print("     MDB_NOSYNC: %d ACKed events lost in %d cuts "
                  "(as it must)" % (lost, args.control_cuts), flush=True)
        res.run("negative control: MDB_NOSYNC loses ACKed events under the "
                "same cuts", run)
    finally:
        cj.close()


def worker_cuts(args, res, rng):
    binaries = system.worker_binaries(args.bin_dir)
    journal = pbtest.Journal(args.journal, {"clock": "manual"},
                             log_name="pb-it-powercut-workers")
    undo_dir = tempfile.mkdtemp(prefix="pb-powercut-w-")
    workers, envs, clean, proxies = {}, {}, {}, {}
    state = {}
    try:
        journal.start()
        shim = os.path.abspath(args.shim)
        for name in system.WORKERS:
            w = system.Worker(name, binaries[name], journal)
            workers[name] = w
            envs[name] = powercut.env_for(
                w.data_dir, os.path.join(undo_dir, name + ".undo"), shim)
            w.start(envs[name])
        steps = scenario.generate(args.seed, 40000)

        def run():
            pub = system.Publisher(journal, window=200)
            t0 = time.time()
            cuts = {n: 0 for n in system.WORKERS}
            undone = kept = 0
            i = 0
            next_cut = time.monotonic() + rng.uniform(0.05, 0.4)
            #  A cut comes after a random while, or sooner on a machine
            #  that publishes the scenario faster than the cuts come: at
            #  most this many steps apart, so that it never runs out
            gap_max = len(steps) // (args.worker_cuts + 1)
            cut_at = 0
            try:
                while sum(cuts.values()) < args.worker_cuts:
                    for _ in range(50):
                        assert i < len(steps), "the scenario ran out"
                        step = steps[i]
                        i += 1
                        if step[0] == "tick":
                            pub.tick(step[1])
                        else:
                            pub.event(step[1], step[2])
                    for n, w in workers.items():
                        assert w.alive(), \
                            "pb-%s exited %s after a power cut of its " \
                            "store; log:\n%s" % (n, w.returncode(),
                                                 w.log_tail())
                    if time.monotonic() < next_cut and i + 50 - cut_at <= gap_max:
                        continue
                    name = rng.choice(system.WORKERS)
                    w = workers[name]
                    w.kill9()
                    w.close_log()
                    mode = rng.choice(("all", "subset"))
                    _, u, k = powercut.cut(envs[name]["PB_POWERCUT_LOG"],
                                           mode, rng)
                    undone += u
                    kept += k
                    cuts[name] += 1
                    w.start(envs[name])
                    next_cut = time.monotonic() + rng.uniform(0.05, 0.4)
                    cut_at = i
                pub.drain()
                assert not pub.naks, "NAKs: %r" % pub.naks[:3]
            finally:
                pub.close()
            time.sleep(0.3)
            for n, w in workers.items():
                assert w.alive(), "pb-%s exited %s; log:\n%s" % (
                    n, w.returncode(), w.log_tail())
            head = system.wait_quiescent(journal, list(workers.values()),
                                         timeout=120)
            state["head"] = head
            for n, w in workers.items():
                assert w.term() == 0, "pb-%s: bad exit on SIGTERM" % n
                state["dump-" + n] = w.dump()
            print("     %s power cuts of worker stores in %.0fs (%d sectors "
                  "undone, %d kept); %d steps published; head %d" % (
                      ", ".join("%s %d" % kv for kv in sorted(cuts.items())),
                      time.time() - t0, undone, kept, i, head), flush=True)
        if not res.run("workers: %d power cuts of their stores, every store "
                       "opens again" % args.worker_cuts, run):
            return

        def rebuild():
            head = state["head"]
            for name in system.WORKERS:
                proxies[name] = system.IngestProxy(journal)
                clean[name] = system.Worker(
                    name, binaries[name], journal,
                    ingest=proxies[name].endpoint).start()
            for name in system.WORKERS:
                system.wait_applied(clean[name], head, timeout=120)
            time.sleep(0.5)
            for name in system.WORKERS:
                got = clean[name].dump()
                want = state["dump-" + name]
                assert got == want, "pb-%s store after power cuts differs " \
                    "from a clean rebuild: %s" % (
                        name, system.dump_diff(got, want))
            system.check_no_duplicate_notifications(
                system.notifications(journal))
        res.run("workers: every store equals a clean rebuild, no "
                "notification twice", rebuild)
    finally:
        for w in list(workers.values()) + list(clean.values()):
            w.close()
        for p in proxies.values():
            p.close()
        journal.close()
        shutil.rmtree(undo_dir, ignore_errors=True)


def main():
    args = pbtest.parse_args(extra_args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rng = random.Random(args.seed)
    res = pbtest.Results("it_powercut")
    negative_control(args, res, rng)
    journal_cuts(args, res, rng)
    if args.worker_cuts:
        worker_cuts(args, res, rng)
    res.finish()


if __name__ == "__main__":
    sys.exit(main())
