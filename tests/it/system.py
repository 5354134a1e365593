"""system - the whole system under test: pb-journal and the three workers

Builds on pbtest (the journal, producers, replay) with what whole-system
tests and the benchmark need, speaking only the wire contract and the
workers' command line (--data-dir, --ingest, --fanout, --replay, --dump):

  Worker          one pb-<name> process on a data dir, started against a
                  journal (or a proxy of its ingest); kill -9, SIGTERM,
                  VmHWM; its store's canonical dump and applied_seq.
  IngestProxy     stands between a worker and the journal's ingest,
                  recording every notification the worker sends and the
                  journal's answer (a rebuild's output, seen on the wire).
  publish_steps   publishes a scenario (tests/it/scenario.py): events
                  pipelined on one DEALER, TICKs on the control socket in
                  their place in the order (the window is drained first).
  wait_quiescent  until the log head stops moving and every worker's
                  applied_seq is the head.
  notifications   the notify.* of the log, and the duplicate checks: by
                  content, (type, cause, data), against a clean replay
                  (published_contents); by (src, id) only checks the
                  journal (check_no_duplicate_notifications says why).

Run with /usr/bin/python3 (the pyenv python3 on PATH has no zmq).
"""

import collections
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import msgpack
import zmq

import pbtest
import scenario

WORKERS = ("nac", "cpe", "activity")


def find_worker(bin_dir, name):
    for cand in (os.path.join(bin_dir, "services", name, "pb-" + name),
                 os.path.join(bin_dir, "pb-" + name)):
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    raise SystemExit("pb-%s not found under %s" % (name, bin_dir))


def worker_binaries(bin_dir):
    return {name: find_worker(bin_dir, name) for name in WORKERS}


# ---------------------------------------------------------------------------
# Store dumps


def dump_store(binary, data_dir, timeout=60.0):
    """The canonical dump (bytes) of the store in data_dir (pb-<w> --dump).
    Retried a few times: a dump that meets the worker growing its map may
    fail once."""
    last = None
    for _ in range(5):
        proc = subprocess.run([binary, "--dump", data_dir],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout, env=_clean_env())
        if proc.returncode == 0:
            return proc.stdout
        last = proc
        time.sleep(0.1)
    raise RuntimeError("%s --dump %s failed (%d): %s" % (
        binary, data_dir, last.returncode,
        last.stderr.decode("utf-8", "replace")[-500:]))


def applied_seq(binary, data_dir, tries=3):
    """applied_seq of the store: the 'meta applied_seq <hex>' line of the
    dump (meta comes first; the rest of the dump is not read); 0 for a
    store that has applied nothing (also one whose worker died before
    LMDB wrote its meta pages), None when the dump failed 'tries' times
    (it does, with MDB_MAP_RESIZED, while the worker's store grows: see
    the report of issue 3)."""
    for _ in range(tries):
        seq = _applied_seq_once(binary, data_dir)
        if seq is not None:
            return seq
        time.sleep(0.01)
    #  A worker killed between making its directory and LMDB's writing of
    #  the two meta pages of a new store leaves no data.mdb, or a shorter
    #  one, which no dump opens: that store has applied nothing
    try:
        size = os.path.getsize(os.path.join(data_dir, "data.mdb"))
    except OSError:
        size = 0
    if size < 2 * os.sysconf("SC_PAGE_SIZE"):
        return 0
    return None


def _applied_seq_once(binary, data_dir):
    proc = subprocess.Popen([binary, "--dump", data_dir],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=_clean_env())
    seq = None
    empty = True
    try:
        for line in proc.stdout:
            empty = False
            parts = line.split()
            if parts[:2] == [b"meta", b"applied_seq"] and len(parts) == 3:
                seq = int(parts[2], 16)
                break
            if not line.startswith(b"meta "):
                break
    finally:
        proc.stdout.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if seq is None and empty and proc.returncode == 0:
        return 0                        # an empty store
    return seq


def dump_diff(a, b, limit=10):
    """The first lines where two dumps differ, for a failure message."""
    la, lb = a.splitlines(), b.splitlines()
    sa, sb = set(la), set(lb)
    only_a = [x for x in la if x not in sb][:limit]
    only_b = [x for x in lb if x not in sa][:limit]
    return "%d vs %d lines; only in first: %r; only in second: %r" % (
        len(la), len(lb), only_a, only_b)


def _clean_env(extra=None):
    env = dict(os.environ)
    env.pop("PB_CRASH", None)
    env.update(extra or {})
    return env


# ---------------------------------------------------------------------------
# Worker process


class Worker:
    """One pb-<name> on its own data dir. 'ingest' overrides the journal's
    ingest endpoint (an IngestProxy)."""

    def __init__(self, name, binary, journal, data_dir=None, options=None,
                 ingest=None):
        self.name = name
        self.binary = binary
        self.journal = journal
        self.owns_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="pb-%s-" % name)
        self.options = dict(options or {})
        self.ingest = ingest or journal.ingest
        self.proc = None
        self.log_path = os.path.join(self.data_dir + ".log")
        self.log_file = None
        self.starts = 0

    def argv(self):
        args = [self.binary, "--data-dir", os.path.join(self.data_dir, "db"),
                "--ingest", self.ingest, "--fanout", self.journal.fanout,
                "--replay", self.journal.replay]
        for key, value in self.options.items():
            args += ["--" + key, str(value)]
        return args

    @property
    def store_dir(self):
        return os.path.join(self.data_dir, "db")

    def start(self, env=None):
        assert not self.alive()
        self.close_log()
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(pbtest.wrap_prefix() + self.argv(),
                                     env=_clean_env(env),
                                     stdout=self.log_file,
                                     stderr=subprocess.STDOUT)
        self.starts += 1
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def returncode(self):
        return None if self.proc is None else self.proc.poll()

    def kill9(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        return self.wait_exit(10)

    def term(self, timeout=20.0):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        rc = self.wait_exit(timeout)
        if rc is None:
            self.kill9()
        return rc

    def wait_exit(self, timeout):
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def vm_hwm_kb(self):
        return pbtest.proc_field(self.proc, "status", "VmHWM:")

    def dump(self):
        return dump_store(self.binary, self.store_dir)

    def applied_seq(self):
        if not os.path.isdir(self.store_dir):
            return 0
        return applied_seq(self.binary, self.store_dir)

    def log_tail(self, lines=15):
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
            return "\n".join(text.splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def close_log(self):
        if self.log_file:
            self.log_file.close()
            self.log_file = None

    def close(self, keep=False):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.wait_exit(10)
        self.close_log()
        if self.owns_dir and not keep:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            try:
                os.unlink(self.log_path)
            except OSError:
                pass


# ---------------------------------------------------------------------------
# Ingest proxy: what a worker publishes, and what the journal answered


class IngestProxy:
    """A ROUTER on a free port that forwards every (type, envelope) to the
    journal's ingest and relays the answer, recording both:
    self.sent [(type, envelope map)], self.answers {id: (kind, map)}.
    One worker per proxy (replies are relayed in order to the last peer)."""

    def __init__(self, journal):
        self.journal = journal
        self.port = pbtest.free_port()
        self.endpoint = "tcp://127.0.0.1:%d" % self.port
        self.sent = []
        self.answers = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait(5)

    def _run(self):
        ctx = pbtest.CTX
        front = ctx.socket(zmq.ROUTER)
        front.setsockopt(zmq.LINGER, 0)
        front.setsockopt(zmq.SNDHWM, 0)
        front.setsockopt(zmq.RCVHWM, 0)
        front.bind(self.endpoint)
        back = ctx.socket(zmq.DEALER)
        back.setsockopt(zmq.LINGER, 0)
        back.setsockopt(zmq.SNDHWM, 0)
        back.setsockopt(zmq.RCVHWM, 0)
        back.connect(self.journal.ingest)
        poller = zmq.Poller()
        poller.register(front, zmq.POLLIN)
        poller.register(back, zmq.POLLIN)
        peers = collections.deque()
        self.ready.set()
        try:
            while not self.stop.is_set():
                for sock, _ in poller.poll(100):
                    if sock is front:
                        frames = front.recv_multipart()
                        ident, rest = frames[0], frames[1:]
                        if len(rest) == 2:
                            env = pbtest.unpack(rest[1])
                            with self.lock:
                                self.sent.append((rest[0].decode(), env))
                        peers.append(ident)
                        back.send_multipart(rest)
                    else:
                        frames = back.recv_multipart()
                        ident = peers.popleft() if peers else b""
                        if len(frames) == 2:
                            body = pbtest.unpack(frames[1])
                            with self.lock:
                                if isinstance(body, dict) and "id" in body:
                                    self.answers[body["id"]] = (
                                        frames[0].decode(), body)
                        front.send_multipart([ident] + frames)
        finally:
            front.close(0)
            back.close(0)

    def close(self):
        self.stop.set()
        self.thread.join(5)


# ---------------------------------------------------------------------------
# Publishing a scenario


class Publisher:
    """Publishes scenario steps in order: events pipelined on one DEALER
    (at most 'window' in flight), each TICK only after every event before
    it was answered. Records each event's send time and seq (for latency).
    Raises on a NAK: every generated event is valid."""

    def __init__(self, journal, window=500, timeout=30.0):
        self.journal = journal
        self.window = window
        self.producer = pbtest.Producer(journal, timeout=timeout)
        self.control = pbtest.Replayer(journal, timeout=timeout)
        self.envs = scenario.Envelopes()
        self.inflight = collections.deque()    # (send time, envelope)
        self.sent_at = {}                      # seq -> send time
        self.naks = []
        self.acked = 0
        self.ticks = 0
        self.record = False

    def _reply(self):
        kind, body = self.producer.recv()
        t_sent, env = self.inflight.popleft()
        if kind == "ACK":
            self.acked += 1
            if self.record:
                self.sent_at[body["seq"]] = t_sent
        else:
            self.naks.append((env["type"], env["data"], body))

    def drain(self):
        while self.inflight:
            self._reply()

    def event(self, type_, data):
        while len(self.inflight) >= self.window:
            self._reply()
        while self.inflight and self.producer.poll(0):
            self._reply()
        env = self.envs.envelope(type_, data)
        t = time.monotonic()
        self.producer.send(pbtest.pack(env), type_)
        self.inflight.append((t, env))

    def tick(self, now):
        self.drain()
        t = time.monotonic()
        kind, body = self.control.tick(now)
        if kind != "TICKED":
            raise AssertionError("TICK %d answered %s %r" % (now, kind, body))
        self.ticks += 1
        if self.record:
            self.sent_at[body["seq"]] = t

    def run(self, steps, rate=None):
        """Publish every step; 'rate' (events/s) paces the sends."""
        t0 = time.monotonic()
        for i, step in enumerate(steps):
            if rate:
                due = t0 + i / rate
                delay = due - time.monotonic()
                if delay > 0:
                    while self.inflight and self.producer.poll(0):
                        self._reply()
                    delay = due - time.monotonic()
                    if delay > 0.0002:
                        time.sleep(delay)
            if step[0] == "tick":
                self.tick(step[1])
            else:
                self.event(step[1], step[2])
        self.drain()
        if self.naks:
            raise AssertionError("%d generated events NAKed, first: %r" % (
                len(self.naks), self.naks[:3]))
        return time.monotonic() - t0

    def close(self):
        self.producer.close()
        self.control.close()


def status(journal):
    with pbtest.Replayer(journal, timeout=10) as r:
        return r.status()


def wait_quiescent(journal, workers, timeout=120.0, stable=1.0):
    """Until the head has not moved for 'stable' seconds and every worker's
    applied_seq equals it. Returns the head; raises with each worker's
    applied_seq on timeout or when a worker died."""
    deadline = time.time() + timeout
    last_head, since = None, time.time()
    while time.time() < deadline:
        for w in workers:
            if w.proc is not None and not w.alive():
                raise AssertionError("pb-%s exited (%s); log:\n%s" % (
                    w.name, w.returncode(), w.log_tail()))
        head = status(journal)["head"]
        if head != last_head:
            last_head, since = head, time.time()
        applied = [w.applied_seq() for w in workers]
        if all(a == head for a in applied) \
                and time.time() - since >= stable:
            return head
        time.sleep(0.2)
    raise AssertionError("not quiescent in %.0fs: head %s, applied %s" % (
        timeout, last_head, {w.name: w.applied_seq() for w in workers}))


def wait_applied(worker, target, timeout=120.0, poll=0.1):
    """Until worker's applied_seq >= target; returns the time it took."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if worker.proc is not None and not worker.alive():
            raise AssertionError("pb-%s exited (%s); log:\n%s" % (
                worker.name, worker.returncode(), worker.log_tail()))
        seq = worker.applied_seq()
        if seq is not None and seq >= target:
            return time.monotonic() - t0
        time.sleep(poll)
    raise AssertionError("pb-%s applied_seq %d < %d after %.0fs" % (
        worker.name, worker.applied_seq(), target, timeout))


# ---------------------------------------------------------------------------
# Notifications of the log


def notifications(journal):
    """The notify.* events of the log: list of stored envelope maps."""
    with pbtest.Replayer(journal, timeout=60) as r:
        events, _, _ = r.replay(1, prefixes=["notify."])
    return [e[2] for e in events]


def canon(obj):
    """A value with every map's keys sorted, for comparing maps whose
    producers packed them in different orders."""
    if isinstance(obj, dict):
        return [[k, canon(obj[k])] for k in sorted(obj)]
    if isinstance(obj, (list, tuple)):
        return [canon(x) for x in obj]
    return obj


def note_key(env):
    """What makes a notification: everything but seq and ts."""
    return pbtest.pack(canon([env.get("src"), env.get("id"), env.get("type"),
                              env.get("cause"), env.get("data")]))


def content_key(env):
    """(type, cause, data): two notifications equal in this are one."""
    return pbtest.pack(canon([env.get("type"), env.get("cause"),
                              env.get("data")]))


#  The notification types whose (type, cause, data) one event may
#  legitimately yield twice, under two ids (<worker>/<cause>/<index>, two
#  indexes). Both come from pb-cpe's queue drain (services/cpe/
#  pb_cpe_rules.c, s_queue_drain): the event that decides a partner's
#  waiting head handover (notify.nac.adopted / blocked / rejected
#  invalid_action) completes, under that one cause, every handover of the
#  partner queued behind it (EVENTS.md: "handovers of one partner complete
#  in log order"), and the data names the partner, not the handover:
#    notify.cpe.rejected  {partner, reason}: two queued handovers of one
#                         partner refused for the same reason (both waited
#                         on a decision that is blocked; the partner was
#                         suspended meanwhile: not_eligible; ...).
#    notify.cpe.assigned  {partner, ally, previous, term_start, term_end}:
#                         two queued renewals by the holder itself with the
#                         same effective date, each with its own decision.
#  Every other rule yields at most one notification per (type, key) for an
#  event: one per proposal, activity, partner or quarantined seq.
REPEATABLE_CONTENT = ("notify.cpe.rejected", "notify.cpe.assigned")


def content_counts(envs):
    """Counter of content_key over notification envelopes."""
    return collections.Counter(content_key(e) for e in envs)


def published_contents(proxies):
    """What clean replays published, seen on the wire by IngestProxy-s:
    the Counter of content_key over the distinct envelopes (by id: a
    resend is one notification). This is the multiset a log without any
    duplicate holds."""
    expected = collections.Counter()
    for proxy in proxies:
        with proxy.lock:
            sent = list(proxy.sent)
        by_id = {}
        for _, env in sent:
            by_id[(env.get("src"), env["id"])] = env
        expected.update(content_counts(by_id.values()))
    return expected


def _show(keys, limit=3):
    return [msgpack.unpackb(k, raw=False) for k in list(keys)[:limit]]


def check_no_duplicate_notifications(notes, expected=None):
    """Assert that no notification appears twice, by content.

    By (src, id) first: that cannot fail while the journal deduplicates
    ids (a resend is answered with its first seq and not appended,
    it_idempotency), and a worker's id is <worker>/<cause>/<index>, so a
    notification the worker sent twice is logged once whatever the worker
    did. It is kept as a check of the journal, not of the workers.

    What can fail is the content, (type, cause, data): a worker that
    applies an event twice, or derives a notification again under another
    index, logs it under a second id. A content seen more than once fails
    unless its type is in REPEATABLE_CONTENT (one event completing several
    queued handovers; see there). With 'expected' (content_counts of what
    a clean replay on empty stores publishes, see published_contents) the
    log's multiset must moreover equal it exactly, so that a duplicate of
    a repeatable type fails too, and so does a lack or an extra. Returns
    the Counter of the contents that appear more than once."""
    by_id = collections.Counter((n["src"], n["id"]) for n in notes)
    dup = [k for k, c in by_id.items() if c > 1]
    assert not dup, "%d notifications logged twice by (src, id), e.g. %r" % (
        len(dup), dup[:5])
    by_content = content_counts(notes)
    repeated = collections.Counter({k: c for k, c in by_content.items()
                                    if c > 1})
    bad = [k for k in repeated
           if msgpack.unpackb(k, raw=False)[0] not in REPEATABLE_CONTENT]
    assert not bad, (
        "%d notifications logged more than once by (type, cause, data) "
        "under distinct ids, of types no event yields twice (e.g. %r)"
        % (len(bad), _show(bad)))
    if expected is not None:
        extra = by_content - expected
        lacking = expected - by_content
        assert not extra and not lacking, (
            "notifications by (type, cause, data) differ from a clean "
            "replay: %d extra in the log (e.g. %r), %d lacking (e.g. %r)" % (
                sum(extra.values()), _show(extra),
                sum(lacking.values()), _show(lacking)))
    return repeated


def count_types(notes):
    return collections.Counter(n["type"] for n in notes)
