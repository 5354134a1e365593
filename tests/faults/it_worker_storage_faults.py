#!/usr/bin/python3
"""it_worker_storage_faults - a worker's own store fails: retried, then the
worker exits for its supervisor; never a quarantine (issue 3; EVENTS.md,
"Every worker")

A real pb-journal (on a sound disk) and a real pb-nac; a generated scenario
without the events the rules must quarantine (tests/it/scenario.py, edge
off), published in chunks between the faults, so any
notify.nac.quarantined, or any quarantine line in a store, is the fault's.

  fiu         pb-nac under Debian's fiu-run (libfiu), failure points enabled
              at run time with fiu-ctrl while it is caught up:
              fdatasync EIO once (onetime): the batch commit fails, is
              retried and succeeds; the worker stays up and catches up.
              pwrite/writev EIO, then fdatasync EIO, for good: the worker
              logs the failed commit on every attempt (retried), then
              "batch failed after retries" and "stopping ... status=<store
              code>", and exits 1 (not a signal).
  disk full   a second pb-nac whose store sits on a real 16 MiB tmpfs
              (mount, as root; its log elsewhere), caught up, then the
              tmpfs filled to the last byte: as the store needs a new page
              the commits meet ENOSPC, are retried, and the worker exits 1
              saying so. Written-ahead is off (--prealloc 0) so that LMDB
              itself meets the full disk: with it on, the worker runs on
              the file written ahead until that is used up.
  recovery    after each fault, the same worker restarted on the same
              store (no fiu; the filler removed) catches up to the head.
              At the end both stores equal a clean rebuild (a fresh pb-nac
              on an empty store, its ingest through a recording proxy),
              byte for byte; neither holds a quarantine; the log holds no
              notify.nac.quarantined, no notification twice, and exactly
              the notifications the clean rebuild publishes.

When mount is not possible (not root), the disk-full check is reported as
skipped and the script exits 77 (ctest: Skipped) if all else passed.

Usage: it_worker_storage_faults.py --bin-dir BUILD [--seed N]
"""

import errno
import os
import re
import shutil
import signal
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "it"))

import faults      # noqa: E402
import pbtest      # noqa: E402
import scenario    # noqa: E402
import system      # noqa: E402

CHUNKS = 12                             # the scenario is published in these
QUARANTINED = "notify.nac.quarantined"


def extra_args(ap):
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--count", type=int, default=6000,
                    help="scenario steps, in %d chunks" % CHUNKS)


class FaultWorker(system.Worker):
    """A system.Worker that may run under a wrapper (fiu-run) and logs
    where its data dir is not (a full tmpfs would take the log too)."""

    def __init__(self, *args, log_path=None, **kw):
        super().__init__(*args, **kw)
        self.wrap = []
        if log_path:
            self.log_path = log_path

    def argv(self):
        return self.wrap + super().argv()

    def mark(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_since(self, mark):
        with open(self.log_path, "rb") as f:
            f.seek(mark)
            return f.read().decode("utf-8", "replace")


class Run:
    """The journal, the scenario in chunks, one publisher for all of them
    (so every event has its own id), the workers under test."""

    def __init__(self, args):
        self.args = args
        self.nac = system.find_worker(args.bin_dir, "nac")
        steps = scenario.generate(args.seed, args.count, edge=False)
        size = (len(steps) + CHUNKS - 1) // CHUNKS
        self.chunks = [steps[i:i + size] for i in range(0, len(steps), size)]
        self.journal = pbtest.Journal(args.journal, {"clock": "manual"},
                                      log_name="pb-it-worker-storage")
        self.journal.start()
        self.publisher = system.Publisher(self.journal, window=200)
        self.workers = []

    def publish(self):
        """The next chunk; False when none is left."""
        if not self.chunks:
            return False
        self.publisher.run(self.chunks.pop(0))
        return True

    def quiet(self, workers, timeout=60.0):
        return system.wait_quiescent(self.journal, workers, timeout=timeout,
                                     stable=0.5)

    def close(self):
        self.publisher.close()
        keep = bool(os.environ.get("PB_IT_KEEP"))
        for w in self.workers:
            if keep:
                print("     kept %s (log %s)" % (w.data_dir, w.log_path))
            w.close(keep=keep)
            if not w.owns_dir and not keep:
                try:
                    os.unlink(w.log_path)
                except OSError:
                    pass
        self.journal.close()


def quarantine_notices(journal):
    return [n for n in system.notifications(journal)
            if n["type"] == QUARANTINED]


def assert_no_quarantine(run, worker):
    notes = quarantine_notices(run.journal)
    assert not notes, "%d %s in the log, e.g. %r" % (
        len(notes), QUARANTINED, notes[:2])
    lines = [x for x in worker.dump().splitlines()
             if x.startswith(b"quarantine ")]
    assert not lines, "the store holds %d quarantined, e.g. %r" % (
        len(lines), lines[:2])


def wait_exit(run, worker, timeout=20.0):
    """Publish chunks until the worker exits (it meets the fault on its
    next commit); returns its exit status."""
    deadline = time.time() + timeout
    while worker.alive() and time.time() < deadline:
        if not run.publish():
            break
        rc = worker.wait_exit(1.0)
        if rc is not None:
            return rc
    rc = worker.wait_exit(max(0.0, deadline - time.time()))
    if rc is None:
        worker.kill9()                  # a failure; the next checks go on
    return rc


def assert_exit(worker, rc, since, error, what):
    """Exited 1 (not a signal, not 0) after retrying: the failed commit
    logged on each attempt, then the give-up and the exit status."""
    assert rc is not None, "pb-nac did not exit on %s; log:\n%s" % (
        what, worker.log_tail())
    assert rc == 1, "pb-nac exit %r on %s (1 wanted); log:\n%s" % (
        rc, what, worker.log_tail())
    failed = re.findall(r"pb_worker: \w+ commit failed: (%s)" % error,
                        since)
    assert len(failed) >= 2, "%s: the failed commit logged %d times " \
        "(retried: at least 2); log:\n%s" % (what, len(failed),
                                              worker.log_tail())
    assert "batch failed after retries" in since, \
        "%s: no 'batch failed after retries' in the log:\n%s" % (
            what, worker.log_tail())
    assert re.search(r"nac stopping applied_seq=\d+ status=-40[23]", since), \
        "%s: no 'stopping ... status=<store code>' in the log:\n%s" % (
            what, worker.log_tail())
    return "%d failed commits (%s)" % (len(failed), ", ".join(sorted(set(
        failed))))


# ---------------------------------------------------------------------------
# I/O errors with libfiu


def fiu_checks(run, res):
    base = os.path.join(tempfile.mkdtemp(prefix="pb-wfiu-"), "ctrl")
    w = FaultWorker("nac", run.nac, run.journal)
    run.workers.append(w)
    w.wrap = ["fiu-run", "-x", "-f", base]
    try:
        def start():
            w.start()
            run.publish()
            run.quiet([w])
            time.sleep(0.3)             # ACKed outbox keys committed
            assert_no_quarantine(run, w)
        if not res.run("fiu: pb-nac under fiu-run catches up", start):
            return

        def transient():
            mark = w.mark()
            faults.fiu_ctrl(base, w.proc.pid,
                            "enable name=posix/io/sync/fdatasync,"
                            "failinfo=%d,onetime" % errno.EIO)
            run.publish()
            head = run.quiet([w])
            since = w.log_since(mark)
            failed = since.count("commit failed: Input/output error")
            assert failed == 1, "the one failed fdatasync logged %d times " \
                "as a failed commit; log:\n%s" % (failed, w.log_tail())
            assert "after retries" not in since, "gave up on one failure"
            assert w.alive(), "pb-nac exited on one failed fdatasync"
            assert_no_quarantine(run, w)
            print("     one failed commit, retried: applied through %d, "
                  "still up, nothing quarantined" % head, flush=True)
        res.run("fiu fdatasync EIO once: retried, the worker stays up",
                transient)

        def transient_held():
            #  Events pb-nac has no rule for: their seq is held and the
            #  timers commit it alone (pb_worker_store_outbox_ack), which
            #  so meets the failure
            time.sleep(0.3)
            mark = w.mark()
            faults.fiu_ctrl(base, w.proc.pid,
                            "enable name=posix/io/sync/fdatasync,"
                            "failinfo=%d,onetime" % errno.EIO)
            with pbtest.Producer(run.journal) as p:
                for i in range(20):
                    kind, body = p.publish(pbtest.sized_feedback(
                        "held-%d" % i, "it"))
                    assert kind == "ACK", body
            head = run.quiet([w])
            since = w.log_since(mark)
            failed = since.count("ack commit failed: Input/output error")
            assert failed == 1, "the one failed fdatasync logged %d times " \
                "as a failed ack commit; log:\n%s" % (failed, w.log_tail())
            assert w.alive(), "pb-nac exited on one failed fdatasync"
            assert_no_quarantine(run, w)
            print("     one failed commit of a held seq, retried: applied "
                  "through %d, still up" % head, flush=True)
        res.run("fiu fdatasync EIO once on a held commit: retried, the "
                "worker stays up", transient_held)

        def persistent(label, points):
            if not w.alive():
                w.start()
                run.quiet([w])
                time.sleep(0.3)
            mark = w.mark()
            for point in points:
                faults.fiu_ctrl(base, w.proc.pid,
                                "enable name=%s,failinfo=%d" % (point, errno.EIO))
            rc = wait_exit(run, w)
            w.close_log()
            since = w.log_since(mark)
            n = assert_exit(w, rc, since, "Input/output error", label)
            assert_no_quarantine(run, w)
            print("     %s: %s, exit %d, nothing quarantined" % (
                label, n, rc), flush=True)
        res.run("fiu pwrite/writev EIO: retried, exit 1, no quarantine",
                persistent, "pwrite/writev EIO",
                ["posix/io/rw/pwrite", "posix/io/rw/writev"])
        res.run("fiu fdatasync EIO: retried, exit 1, no quarantine",
                persistent, "fdatasync EIO", ["posix/io/sync/fdatasync"])

        def recover():
            w.wrap = []
            if not w.alive():
                w.start()
            head = run.quiet([w])
            assert_no_quarantine(run, w)
            print("     restarted without fiu: applied through %d" % head,
                  flush=True)
        res.run("fiu: restarted on the same store, pb-nac catches up",
                recover)
    finally:
        shutil.rmtree(os.path.dirname(base), ignore_errors=True)


# ---------------------------------------------------------------------------
# A full disk


def fill(path):
    """Write 'path' until the filesystem has no byte left."""
    block = b"\1" * (256 * 1024)
    with open(path, "wb", buffering=0) as f:
        for size in (len(block), 4096, 1):
            while True:
                try:
                    f.write(block[:size])
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break


def disk_full(run, res):
    mnt = faults.mount_tmpfs("pb-wdiskfull-", "16m")
    if mnt is None:
        return False
    log_path = os.path.join(tempfile.gettempdir(),
                            "pb-wdiskfull-%d.log" % os.getpid())
    w = FaultWorker("nac", run.nac, run.journal,
                    data_dir=os.path.join(mnt, "nac"),
                    options={"prealloc": 0}, log_path=log_path)
    run.workers.append(w)
    filler = os.path.join(mnt, "filler")
    others = [x for x in run.workers if x is not w and x.alive()]
    try:
        def start():
            w.start()
            run.publish()
            head = run.quiet([w] + others)
            assert_no_quarantine(run, w)
            print("     on the tmpfs: applied through %d" % head, flush=True)
        if not res.run("disk full: pb-nac on a 16 MiB tmpfs catches up",
                       start):
            return True

        def full():
            mark = w.mark()
            fill(filler)
            st = os.statvfs(mnt)
            assert st.f_bavail == 0, "%d blocks left" % st.f_bavail
            rc = wait_exit(run, w, timeout=40)
            w.close_log()
            since = w.log_since(mark)
            #  ENOSPC, or EIO: LMDB makes a short write (a writev that
            #  ran out of space midway) an EIO
            n = assert_exit(w, rc, since, "No space left on device|"
                            "Input/output error", "a full disk")
            assert_no_quarantine(run, w)
            print("     full: %s, exit %d, nothing quarantined" % (n, rc),
                  flush=True)
        if not res.run("disk full: retried, exit 1, no quarantine", full):
            return True

        def recover():
            os.unlink(filler)
            w.start()
            head = run.quiet([w] + others)
            assert_no_quarantine(run, w)
            print("     space freed, restarted: applied through %d" % head,
                  flush=True)
        res.run("disk full: restarted once space returns, catches up",
                recover)
    finally:
        if w.alive():
            w.kill9()
        w.close_log()
        #  The store is compared at the end: copied off the tmpfs (as a
        #  dir of the worker's own, removed by its close)
        state = tempfile.mkdtemp(prefix="pb-wdiskfull-")
        if os.path.isdir(w.store_dir):
            shutil.copytree(w.store_dir, os.path.join(state, "db"))
        w.data_dir, w.owns_dir = state, True
        faults.unmount_tmpfs(mnt)
    return True


# ---------------------------------------------------------------------------
# The end: every store equals a clean rebuild, every notification once


def final(run, res):
    live = [w for w in run.workers if os.path.isdir(w.store_dir)]
    state = {}

    def stop():
        while run.publish():
            pass
        for w in live:
            if not w.alive():
                w.start()
        head = run.quiet(live)
        for w in live:
            assert w.term() == 0, "pb-nac: exit on SIGTERM"
            w.close_log()
            state[w] = w.dump()
        state["head"] = head
        print("     %d stores stopped at head %d" % (len(live), head),
              flush=True)
    if not res.run("every worker reaches the head", stop):
        return

    proxy = system.IngestProxy(run.journal)
    clean = system.Worker("nac", run.nac, run.journal,
                          ingest=proxy.endpoint)
    try:
        def rebuild():
            clean.start()
            head = state["head"]
            system.wait_applied(clean, head, timeout=60)
            deadline = time.time() + 30
            while time.time() < deadline and len(proxy.answers) < len(
                    {e["id"] for _, e in proxy.sent}):
                time.sleep(0.1)
            time.sleep(0.5)
            assert system.status(run.journal)["head"] == head, \
                "the clean rebuild grew the log"
            assert clean.term() == 0
            want = clean.dump()
            assert b"\nquarantine " not in want, "the clean rebuild " \
                "quarantined: the scenario is not fault-free"
            for w in live:
                got = state[w]
                assert got == want, "a store after faults differs from a " \
                    "clean rebuild: %s" % system.dump_diff(got, want)
            print("     %d stores == clean rebuild (%d lines)" % (
                len(live), len(want.splitlines())), flush=True)
        if not res.run("stores after the faults == a clean rebuild",
                       rebuild):
            return

        def once():
            notes = system.notifications(run.journal)
            by_id = {e["id"]: e for _, e in proxy.sent}
            logged = {system.note_key(n) for n in notes if n["src"] == "nac"}
            published = {system.note_key(e) for e in by_id.values()}
            assert logged == published, "the log has %d notifications of " \
                "pb-nac, a clean rebuild publishes %d (%d differ)" % (
                    len(logged), len(published), len(logged ^ published))
            system.check_no_duplicate_notifications(
                notes, system.published_contents([proxy]))
            assert not [n for n in notes if n["type"] == QUARANTINED]
            print("     %d notifications, each once, none quarantined"
                  % len(notes), flush=True)
        res.run("every notification logged once, none a quarantine", once)
    finally:
        clean.close()
        proxy.close()


def main():
    args = pbtest.parse_args(extra_args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    res = pbtest.Results("it_worker_storage_faults")
    run = Run(args)
    mounted = True
    try:
        if shutil.which("fiu-run") and shutil.which("fiu-ctrl"):
            fiu_checks(run, res)
        else:
            res.failed.append("fiu-run not installed (deploy/install-deps.sh "
                              "installs fiu-utils)")
        mounted = disk_full(run, res)
        final(run, res)
    finally:
        run.close()
    faults.finish(res, "it_worker_storage_faults", mounted)


if __name__ == "__main__":
    sys.exit(main())
