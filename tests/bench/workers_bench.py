#!/usr/bin/python3
"""workers_bench - the whole system's figures: journal + pb-nac, pb-cpe,
pb-activity on the realistic mix of tests/it/scenario.py

Prints figures; not a pass/fail test (ctest's workers_bench_smoke runs it
with --quick so that it cannot rot).

1. End to end, live, at each offered rate (--rates, default 1000,10000
   events/s), at a live pace (a tick a second), then at the highest rate
   time-compressed (about a hundred simulated days a second: every
   deadline, term and reference change of years): pb_live_bench (C, tests/bench/pb_live_bench.c) publishes the
   scenario paced on one DEALER (TICKs in their place, manual clock) while
   the three workers run, and its subscriber thread stamps every notify.*
   on arrival at the fanout.
     - latency publish -> notification: from the producer's send of an
       event (or TICK) to the fanout arrival of each notification it
       caused, directly or through other notifications (a handover that
       waited for its decision is caused by notify.nac.adopted, whose
       cause is the published decision): p50, p99, max;
     - throughput: steps / (first send .. last derived notification);
     - whether the publisher kept the offered rate.
2. Catch-up from a log built once by pipelined publishing (window 1000)
   of --catchup-events scenario steps (default 500,000) with no worker
   running; pass 1 adds the notifications (about one per step), so the
   rebuild pass reads a log of about a million events (about 3 minutes
   in all on 2 quiet cores). Then each worker alone, on an empty dir:
     - pass 1: catches up from the bare log and publishes what it derives
       (the next worker's log holds those notifications);
     - pass 2 (rebuild): catches up again, from the complete log; its
       notifications are all duplicates the journal acknowledges.
   Events applied per second until applied_seq reaches the head.
3. Peak memory (VmHWM) of every process.

Targets for reference: catch-up >= 100,000 events/s per worker; p99
publish -> notification < 10 ms at 10,000 events/s.

Usage: workers_bench.py --bin-dir BUILD [--quick] [--rates 1000,10000]
       [--seconds 5] [--catchup-events N]
Build Release first for figures worth quoting, e.g.
  cmake -S . -B /tmp/pb-rel -DCMAKE_BUILD_TYPE=Release -DPB_CRASHPOINTS=OFF
  cmake --build /tmp/pb-rel -j2
  /usr/bin/python3 tests/bench/workers_bench.py --bin-dir /tmp/pb-rel
"""

import os
import re
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "it"))

import msgpack  # noqa: E402

import pbtest  # noqa: E402
import scenario  # noqa: E402
import system  # noqa: E402


CAUGHT_UP = re.compile(rb"caught up applied_seq=(\d+) head=(\d+)")

# ---------------------------------------------------------------------------
# Figures


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, int(p / 100.0 * len(sorted_values)))
    return sorted_values[i]


def hwm_mb(kb):
    return "%.1f MiB" % (kb / 1024.0) if kb else "?"


def written_mb(name, process, events):
    #  write_bytes: what the kernel counts as this process's writes to
    #  the disk (pages it dirtied, folio by folio); wchar: what it passed
    #  to write calls. Far apart, the page cache writes back more than
    #  the process changed (README, Benchmarks)
    written = pbtest.proc_field(process.proc, "io", "write_bytes:")
    called = pbtest.proc_field(process.proc, "io", "wchar:")
    if written is None or called is None:
        return "%s ?" % name
    if written * 100 < called:
        return "%s %.1f MiB (a tmpfs writes its files nothing back)" % (
            name, written / 1048576.0)
    return "%s %.0f MiB (%.1f KiB a logged event; %.1f times its write " \
        "calls)" % (name, written / 1048576.0,
                    written / 1024.0 / max(1, events),
                    written / float(max(1, called)))


def write_steps(steps, path):
    """The steps file of pb_live_bench: a msgpack stream of [0, now] and
    [1, type, envelope bytes]."""
    envs = scenario.Envelopes()
    with open(path, "wb") as out:
        for step in steps:
            if step[0] == "tick":
                out.write(msgpack.packb([0, step[1]]))
            else:
                env = pbtest.pack(envs.envelope(step[1], step[2]))
                out.write(msgpack.packb([1, step[1], env], use_bin_type=True))


def live_run(args, binaries, rate, seconds, seed, compressed, store_dir=None):
    """One end-to-end run at 'rate' steps/s for 'seconds': the scenario
    published paced by pb_live_bench (C: a Python publisher cannot offer
    10,000 events/s here and measure them too), which also stamps every
    notify.* on arrival.

    Live pace (not 'compressed'): one TICK a second of the run, moving
    log time by one second, as the journal's own clock does; per-day
    reference changes (profile and policy changes, each of which rescores
    many activities at once) are then as rare as in service. Compressed:
    ticks of one to three days, about a hundred simulated days a second,
    so that every deadline, term and reference change of years passes in
    the run: a stress of the bursts, not a service's traffic.

    'store_dir': where the journal's log and the workers' stores are made
    (default: the temporary directory)."""
    count = max(2000, int(rate * seconds))
    if compressed:
        steps = scenario.generate(seed, count, tick_weight=0.5)
    else:
        steps = scenario.generate(seed, count, tick_weight=55.0 / rate,
                                  tick_ms=1000)
    journal = pbtest.Journal(args.journal, {"clock": "manual"},
                             data_dir=tempfile.mkdtemp(prefix="pb-it-",
                                                       dir=store_dir),
                             log_name="pb-bench-live")
    journal.owns_dir = True             # removed at close, as its own
    workers = []
    live = os.path.join(args.bin_dir, "tests", "bench", "pb_live_bench")
    try:
        journal.start()
        steps_path = os.path.join(journal.data_dir, "steps.msgpack")
        write_steps(steps, steps_path)
        for name in system.WORKERS:
            worker = system.Worker(
                name, binaries[name], journal,
                data_dir=tempfile.mkdtemp(prefix="pb-%s-" % name,
                                          dir=store_dir))
            worker.owns_dir = True
            workers.append(worker)
            worker.start()
        time.sleep(0.5)                 # workers subscribed and caught up
        out = subprocess.run(
            [live, "--ingest", journal.ingest, "--replay", journal.replay,
             "--fanout", journal.fanout, "--steps", steps_path,
             "--rate", str(rate), "--window", "1000"],
            stdout=subprocess.PIPE, timeout=600)
        sys.stdout.write(out.stdout.decode())
        if out.returncode != 0:
            raise AssertionError("pb_live_bench exited %d" % out.returncode)
        head = system.wait_quiescent(journal, workers, timeout=300,
                                     stable=1.0)
        print("    head %d; VmHWM: journal %s, %s" % (
            head, hwm_mb(journal.vm_hwm_kb()),
            ", ".join("%s %s" % (w.name, hwm_mb(w.vm_hwm_kb()))
                      for w in workers)))
        #  What the kernel counts as sent to the disk (README: to compare
        #  runs by, not a count of LMDB's pages)
        print("    written to disk: %s" % ", ".join(
            [written_mb("journal", journal, head)]
            + [written_mb(w.name, w, head) for w in workers]))
    finally:
        for w in workers:
            w.close()
        journal.close()


def memory_dir():
    """/dev/shm if it is a tmpfs we can write, else None."""
    try:
        with open("/proc/mounts") as f:
            mounts = [line.split() for line in f]
    except OSError:
        return None
    for fields in mounts:
        if len(fields) > 2 and fields[1] == "/dev/shm" and fields[2] == "tmpfs":
            return "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    return None


def build_log(journal, count, seed):
    """Publish 'count' scenario steps, pipelined; returns (steps, secs)."""
    t = time.monotonic()
    steps = scenario.generate(seed, count, tick_weight=0.5)
    gen = time.monotonic() - t
    pub = system.Publisher(journal, window=1000)
    took = pub.run(steps)
    pub.close()
    print("  log built: %d steps (%d ticks) generated in %.1fs, published "
          "in %.1fs (%.0f steps/s)" % (len(steps), pub.ticks, gen, took,
                                       len(steps) / took))
    return steps


def _caught_up(worker):
    """(applied_seq, head) of the worker's last "caught up" notice (the
    runtime logs one at the END of each replay), or None."""
    try:
        with open(worker.log_path, "rb") as f:
            text = f.read()
    except OSError:
        return None
    found = CAUGHT_UP.findall(text)
    return tuple(int(x) for x in found[-1]) if found else None


def catchup_pass(journal, binaries, label, timeout):
    """Each worker alone on an empty dir: the time until its applied_seq
    is the head (and the head stays put: in pass 1 the worker's own
    notifications extend the log). Progress is read from the worker's
    "caught up" notice first (cheap), then from its store's dump (a dump
    process per poll would compete for the two cores meanwhile)."""
    for name in system.WORKERS:
        start_head = system.status(journal)["head"]
        w = system.Worker(name, binaries[name], journal)
        try:
            t0 = time.monotonic()
            w.start()
            deadline = t0 + timeout
            took = None
            while True:
                if time.monotonic() > deadline:
                    raise AssertionError("pb-%s: applied %s of %d after "
                                         "%.0fs; log:\n%s" % (
                                             name, w.applied_seq(),
                                             system.status(journal)["head"],
                                             timeout, w.log_tail()))
                if not w.alive():
                    raise AssertionError("pb-%s exited: %s" % (
                        name, w.log_tail()))
                seen = _caught_up(w)
                if seen is None:
                    time.sleep(0.02)
                    continue
                head = system.status(journal)["head"]
                applied = seen[0] if seen[0] >= head else w.applied_seq()
                if applied is not None and applied >= head:
                    took = took or time.monotonic() - t0
                    time.sleep(0.3)
                    if system.status(journal)["head"] == head:
                        break
                    took = None
                time.sleep(0.05)
            hwm = w.vm_hwm_kb()
            if not w.alive():
                print("    pb-%s EXITED (%s) once caught up; log:\n%s" % (
                    name, w.returncode(), w.log_tail()))
            print("    %-8s pb-%-8s %8d events in %6.2fs: %8.0f events/s "
                  "(log grew %d), VmHWM %s" % (
                      label, name, head, took, head / took,
                      head - start_head, hwm_mb(hwm)), flush=True)
        finally:
            w.close()


def catchup_run(args, binaries, count, seed):
    journal = pbtest.Journal(args.journal, {"clock": "manual"},
                             log_name="pb-bench-catchup")
    try:
        journal.start()
        build_log(journal, count, seed)
        catchup_pass(journal, binaries, "pass 1", args.timeout)
        catchup_pass(journal, binaries, "rebuild", args.timeout)
        counts = system.count_types(system.notifications(journal))
        print("  notifications in the log: %s" % ", ".join(
            "%s %d" % (t[len("notify."):], c)
            for t, c in sorted(counts.items())))
        print("  journal VmHWM %s, log %s" % (
            hwm_mb(journal.vm_hwm_kb()),
            subprocess.run(["du", "-sh", journal.data_dir],
                           stdout=subprocess.PIPE).stdout.decode().split()[0]))
    finally:
        journal.close()


def main():
    def extra(ap):
        ap.add_argument("--quick", action="store_true",
                        help="tiny counts: a smoke run")
        ap.add_argument("--rates", default="1000,10000")
        ap.add_argument("--seconds", type=float, default=5.0,
                        help="length of each live run")
        ap.add_argument("--catchup-events", type=int, default=500000,
                        help="upstream steps of the catch-up log; the "
                             "workers' notifications make the log about "
                             "twice as long (500000: about a million)")
        ap.add_argument("--seed", type=int, default=11)
        ap.add_argument("--timeout", type=float, default=600.0)
    args = pbtest.parse_args(extra)
    #  SIGTERM (ctest's timeout) unwinds, so that every process and
    #  temporary directory is cleaned up
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    binaries = system.worker_binaries(args.bin_dir)
    rates = [int(r) for r in args.rates.split(",") if r]
    seconds, count = args.seconds, args.catchup_events
    if args.quick:
        rates, seconds, count = [1000], 2.0, 5000
    t0 = time.time()
    print("workers_bench: %s, %d cores" % (args.bin_dir, os.cpu_count()))
    print("end to end (journal + nac + cpe + activity, manual clock), "
          "live pace (a tick a second):")
    for rate in rates:
        live_run(args, binaries, rate, seconds, args.seed, False)
    memory = memory_dir() if rates else None
    if memory:
        print("the same at %d steps/s, the log and every store in memory "
              "(%s, a tmpfs: each sync returns at once, so nothing is "
              "durable; this run only splits the latency above into the "
              "disk's part and the rest):" % (rates[-1], memory))
        live_run(args, binaries, rates[-1], seconds, args.seed, False,
                 store_dir=memory)
    elif rates:
        print("(no tmpfs at /dev/shm: the in-memory run is skipped)")
    print("end to end, time compressed (about 100 simulated days a second):")
    for rate in rates[-1:]:
        live_run(args, binaries, rate, seconds, args.seed, True)
    print("catch-up from a log of %d steps, each worker alone:" % count)
    catchup_run(args, binaries, count, args.seed)
    print("workers_bench: done in %.0fs" % (time.time() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
