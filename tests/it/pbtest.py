"""pbtest - the shared harness of partnerbus's black-box tests (tests/it/)

Everything here speaks only the wire contract of proto/README.md, with
python3-zmq and python3-msgpack, against a real pb-journal process:

  Journal     start pb-journal on free 127.0.0.1 ports with a temp data dir;
              wait until it answers STATUS; kill -9, SIGTERM, restart on the
              same dir; clean up.
  Producer    a DEALER on ingest: send (type, envelope) pairs, pipelined, and
              read the ACK/NAK replies in order.
  Replayer    a DEALER on replay/control: REPLAY with CREDIT flow control,
              STATUS, TICK, raw commands.
  envelopes   builders of valid events of the catalogue (EVENTS.md).
  Results     assertions that count, and the final 'N passed, 0 failed' line.

Run with /usr/bin/python3 (the pyenv python3 on PATH has no zmq).
"""

import argparse
import fcntl
import os
import shlex
import shutil
import signal
import random
import socket
import subprocess
import sys
import tempfile
import time
import traceback

import msgpack
import zmq

CTX = zmq.Context.instance()

# Sanitizer reports found in a journal's output (Journal.close fills it,
# Results.finish fails the script if it is not empty)
SANITIZER_REPORTS = []

# ---------------------------------------------------------------------------
# msgpack helpers


def pack(obj):
    """Pack one value the way a well-behaved client does (str as str)."""
    return msgpack.packb(obj, use_bin_type=True)


def unpack(raw):
    """Unpack one reply map (strict: str keys, str values stay str)."""
    return msgpack.unpackb(raw, raw=False, strict_map_key=False)


# ---------------------------------------------------------------------------
# Envelope builders: valid events of every upstream type


def feedback_data(activity="ACT-1", frm="ITA", relevance=3, effectiveness=4,
                  comment=None):
    data = {"activity": activity, "from": frm, "relevance": relevance,
            "effectiveness": effectiveness}
    if comment is not None:
        data["comment"] = comment
    return data


VALID_DATA = {
    "registry.ally": {"country": "ITA", "name": "Italy",
                      "joined": "1949-04-04"},
    "registry.partner": {"country": "JPN", "name": "Japan",
                         "frameworks": ["PATG"], "status": "active"},
    "registry.policy": {"discard_below": 2.5},
    "nac.proposal": {"proposal": "P-1",
                     "action": {"kind": "cpe.assign", "partner": "JPN",
                                "ally": "ITA"},
                     "procedure": "meeting"},
    "nac.position": {"proposal": "P-1", "ally": "ITA",
                     "position": "concur"},
    "nac.meeting": {"proposal": "P-1", "outcome": "agreed"},
    "cpe.volunteer": {"ally": "ITA", "partner": "JPN"},
    "cpe.handover": {"partner": "JPN", "to": "ITA", "decision": "P-1",
                     "effective": "2025-01-01"},
    "activity.registered": {"activity": "ACT-1", "title": "Training",
                            "area": "operations", "tool": "PCM",
                            "partners": ["JPN"]},
    "activity.feedback": feedback_data(),
}


def envelope(type_="activity.feedback", id_="e-1", src="it", data=None,
             **extra):
    """An envelope map; 'extra' adds or overrides keys (time, cause, ...)."""
    env = {"id": id_, "src": src, "type": type_,
           "data": dict(VALID_DATA[type_]) if data is None else data}
    env.update(extra)
    return env


def sized_feedback(id_, src="bench", size=200):
    """An activity.feedback envelope of about 'size' packed bytes."""
    env = envelope("activity.feedback", id_, src,
                   feedback_data(comment=""))
    pad = size - len(pack(env))
    if pad > 0:
        env["data"]["comment"] = "x" * pad
    return env


# ---------------------------------------------------------------------------
# Ports and the journal process


PORT_DIR = os.path.join(tempfile.gettempdir(), "pb-test-ports")
_CLAIMS = {}                            # port -> the open file whose lock holds it


def _reserve_port(port):
    """Claim 'port' for the life of this process: an exclusive flock on
    PORT_DIR/<port>, kept open (and not inherited by children). The tests
    that ctest runs side by side all take their ports here, so none takes
    a port another holds, even while the process that binds it is down (a
    journal restarted on its ports). The kernel drops the lock when the
    process ends, however it ends; the files stay, empty, for the next."""
    if port in _CLAIMS:
        return False                    # ours already, handed out before
    f = open(os.path.join(PORT_DIR, str(port)), "a")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        return False
    _CLAIMS[port] = f
    return True


def take_port(port):
    """Whether 'port' is free now and is now reserved for this process
    (see _reserve_port)"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    os.makedirs(PORT_DIR, exist_ok=True)
    return _reserve_port(port)


def free_port():
    """A port taken with take_port, chosen below Linux's ephemeral range
    (32768-60999): a port the kernel hands out for bind(0) can be taken
    again as the source port of any outgoing connection of a test running
    beside this one, before our process binds it."""
    rng = random.SystemRandom()
    while True:
        port = rng.randrange(20000, 32000)
        if take_port(port):
            return port


def wrap_prefix():
    """The PB_WRAP prefix (e.g. "valgrind --error-exitcode=99 -q") as a
    list: tests/valgrind.sh runs every service process under it."""
    return shlex.split(os.environ.get("PB_WRAP", ""))


def find_journal(bin_dir):
    for cand in (os.path.join(bin_dir, "services", "journal", "pb-journal"),
                 os.path.join(bin_dir, "pb-journal")):
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    raise SystemExit("pb-journal not found under %s" % bin_dir)


def proc_field(proc, name, key):
    """The number after 'key' in /proc/PID/<name> of a subprocess.Popen
    (VmHWM: in status, write_bytes: in io), or None once it is gone or
    where the kernel does not keep the file."""
    try:
        with open("/proc/%d/%s" % (proc.pid, name)) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, AttributeError):
        pass
    return None


class Journal:
    """One pb-journal on free ports and a data dir that outlives restarts.

    options: extra --key value pairs (key with dashes, no leading '--'),
    e.g. {"replay-batch": 100, "clock": "auto"}."""

    def __init__(self, binary, options=None, data_dir=None, log_name=None):
        self.binary = binary
        self.owns_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="pb-it-")
        self._pick_ports()
        self.options = {"clock": "manual"}
        self.options.update(options or {})
        self.proc = None
        #  A command the journal runs under (valgrind, fiu-run): PB_WRAP
        #  in the environment, or set by a test before start
        self.wrap = wrap_prefix()
        self.log_path = os.path.join(
            tempfile.gettempdir(),
            "%s-%d.log" % (log_name or "pb-journal", os.getpid()))
        self.log_file = None
        #  With journal/security on: (public, secret, server public) keys
        #  of the harness's own clients (Producer, Replayer, wait_ready)
        self.curve = None

    def _pick_ports(self):
        self.ports = [free_port(), free_port(), free_port()]
        while len(set(self.ports)) < 3:
            self.ports = [free_port(), free_port(), free_port()]
        self.ingest = "tcp://127.0.0.1:%d" % self.ports[0]
        self.fanout = "tcp://127.0.0.1:%d" % self.ports[1]
        self.replay = "tcp://127.0.0.1:%d" % self.ports[2]
        self.started_once = False

    def argv(self):
        args = [self.binary, "--data-dir", os.path.join(self.data_dir, "log"),
                "--ingest", self.ingest, "--fanout", self.fanout,
                "--replay", self.replay]
        for key, value in self.options.items():
            args += ["--" + key, str(value)]
        return args

    def start(self, env=None, wait=True, timeout=10.0):
        """Start the process; with 'wait', until it answers STATUS."""
        assert self.proc is None or self.proc.poll() is not None
        full_env = dict(os.environ)
        full_env.pop("PB_CRASH", None)
        full_env.update(env or {})
        if self.log_file:
            self.log_file.close()
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.wrap + self.argv(), env=full_env,
                                     stdout=self.log_file,
                                     stderr=subprocess.STDOUT)
        if wait:
            try:
                self.wait_ready(timeout)
            except RuntimeError:
                #  A port taken between our check and the bind (the tests
                #  claim theirs, but any other process may bind one):
                #  before the first start nothing depends on the ports
                #  yet, so take new ones and try again
                self.port_retries = getattr(self, "port_retries", 0) + 1
                if (self.started_once or self.port_retries > 5
                        or "Address already in use" not in self.log_tail()):
                    raise
                self._pick_ports()
                return self.start(env, wait, timeout)
            self.started_once = True
        return self

    def wait_ready(self, timeout=10.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("pb-journal exited with %s at start; "
                                   "log tail:\n%s"
                                   % (self.proc.returncode, self.log_tail()))
            try:
                with Replayer(self, timeout=0.3) as r:
                    r.status()
                    return
            except TimeoutError:
                continue
        raise RuntimeError("pb-journal did not answer STATUS in %.0fs; "
                           "log tail:\n%s" % (timeout, self.log_tail()))

    def check_sanitizer(self):
        """Record AddressSanitizer/UBSan/LeakSanitizer reports in the log."""
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                       "runtime error:"):
            at = text.find(marker)
            if at >= 0:
                SANITIZER_REPORTS.append(text[max(0, at - 200):at + 3000])
                print("SANITIZER REPORT in pb-journal output:\n" +
                      SANITIZER_REPORTS[-1], flush=True)
                return

    def log_tail(self, lines=20):
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
            return "\n".join(text.splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def pid(self):
        return self.proc.pid

    def kill9(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        return self.wait_exit(10)

    def term(self, timeout=20.0):
        """SIGTERM and wait; returns the exit status (None if it hung)."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def wait_exit(self, timeout):
        if self.proc is None:
            return None
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        if self.log_file:
            self.log_file.close()
            self.log_file = None
        return rc

    def restart(self, env=None, wait=True):
        if self.alive():
            self.kill9()
        return self.start(env=env, wait=wait)

    def vm_hwm_kb(self):
        return proc_field(self.proc, "status", "VmHWM:")

    def close(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.wait_exit(10)
        if self.log_file:
            self.log_file.close()
            self.log_file = None
        self.check_sanitizer()
        if self.owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        try:
            os.unlink(self.log_path)
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------
# Clients


def apply_curve(sock, curve):
    """CurveZMQ client keys (public, secret, server public), or nothing"""
    if curve:
        sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = curve


def _dealer(endpoint, timeout, curve=None):
    sock = CTX.socket(zmq.DEALER)
    apply_curve(sock, curve)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.setsockopt(zmq.RCVTIMEO, int(timeout * 1000))
    sock.setsockopt(zmq.RECONNECT_IVL, 20)
    sock.connect(endpoint)
    return sock


class Producer:
    """A DEALER on ingest. send() queues a request; recv() reads the next
    reply as (kind, map) where kind is "ACK" or "NAK"."""

    def __init__(self, journal, timeout=10.0):
        self.sock = _dealer(journal.ingest, timeout, getattr(journal, "curve", None))
        self.timeout = timeout

    def send(self, env, type_=None):
        """Send an envelope map (or ready bytes) with its type frame."""
        body = env if isinstance(env, (bytes, bytearray)) else pack(env)
        if type_ is None:
            type_ = env["type"]
        self.sock.send_multipart([type_.encode() if isinstance(type_, str)
                                  else type_, body])

    def send_frames(self, frames):
        self.sock.send_multipart(frames)

    def recv(self, timeout=None):
        if timeout is not None:
            if not self.sock.poll(int(timeout * 1000)):
                raise TimeoutError("no reply on ingest in %.1fs" % timeout)
        try:
            frames = self.sock.recv_multipart()
        except zmq.Again:
            raise TimeoutError("no reply on ingest in %.1fs" % self.timeout)
        assert len(frames) == 2, "reply has %d frames, not 2: %r" % (
            len(frames), frames)
        kind = frames[0].decode()
        assert kind in ("ACK", "NAK"), "reply kind %r" % kind
        return kind, unpack(frames[1])

    def poll(self, ms):
        return self.sock.poll(ms)

    def publish(self, env, type_=None):
        """Send one and wait for its reply."""
        self.send(env, type_)
        return self.recv()

    def publish_all(self, envs, window=1000):
        """Pipeline envelopes with at most 'window' in flight; returns the
        replies in order."""
        replies = []
        sent = 0
        while len(replies) < len(envs):
            while sent < len(envs) and sent - len(replies) < window:
                self.send(envs[sent])
                sent += 1
            replies.append(self.recv())
        return replies

    def close(self):
        self.sock.close(0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Replayer:
    """A DEALER on replay/control."""

    def __init__(self, journal, timeout=10.0):
        self.sock = _dealer(journal.replay, timeout, getattr(journal, "curve", None))
        self.timeout = timeout

    def command(self, name, body=None):
        frames = [name.encode()]
        if body is not None:
            frames.append(body if isinstance(body, bytes) else pack(body))
        self.sock.send_multipart(frames)

    def recv(self):
        try:
            frames = self.sock.recv_multipart()
        except zmq.Again:
            raise TimeoutError("no reply on replay in %.1fs" % self.timeout)
        return frames

    def request(self, name, body=None):
        """Send a command; return (reply name, reply map)."""
        self.command(name, body)
        frames = self.recv()
        assert len(frames) == 2, "%s reply has %d frames: %r" % (
            name, len(frames), frames[:3])
        return frames[0].decode(), unpack(frames[1])

    def status(self):
        kind, body = self.request("STATUS")
        assert kind == "STATUS", "STATUS answered %s %r" % (kind, body)
        return body

    def tick(self, now):
        return self.request("TICK", {"now": now})

    def replay(self, frm=1, to=None, prefixes=None, credit=None,
               max_batches=None):
        """Run one REPLAY to its END, granting one CREDIT per batch.
        Returns (events, end, batches): events as (seq, type, map, raw)."""
        req = {"from": frm}
        if to is not None:
            req["to"] = to
        if prefixes is not None:
            req["prefixes"] = prefixes
        if credit is not None:
            req["credit"] = credit
        self.command("REPLAY", req)
        events = []
        batches = 0
        while True:
            frames = self.recv()
            kind = frames[0].decode()
            if kind == "EVENTS":
                batches += 1
                for raw in frames[1:]:
                    env = unpack(raw)
                    events.append((env.get("seq"), env.get("type"), env, raw))
                self.command("CREDIT", {"n": 1})
                if max_batches is not None and batches > max_batches:
                    raise AssertionError("more than %d batches" % max_batches)
            elif kind == "END":
                assert len(frames) == 2, "END with %d frames" % len(frames)
                return events, unpack(frames[1]), batches
            else:
                raise AssertionError("REPLAY answered %s %r" % (
                    kind, frames[1:2]))

    def close(self):
        self.sock.close(0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def full_log(journal, timeout=30.0):
    """Every logged event, via a full replay: list of (seq, type, env)."""
    with Replayer(journal, timeout=timeout) as r:
        events, end, _ = r.replay(1)
    return events, end


def check_log_gapless(events, end):
    """Assert seqs are 1..head, no gaps, and END agrees."""
    seqs = [e[0] for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), \
        "log seqs are not gapless 1..n (first bad at index %d)" % next(
            i for i, s in enumerate(seqs) if s != i + 1)
    assert end["head"] == len(seqs), "END head %r but %d events" % (
        end["head"], len(seqs))
    assert end["count"] == len(seqs), "END count %r but %d events" % (
        end["count"], len(seqs))


# ---------------------------------------------------------------------------
# Test runner


class Results:
    """Collects named checks; each check is a function that asserts."""

    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = []
        self.started = time.time()

    def run(self, label, fn, *args, **kw):
        t0 = time.time()
        try:
            fn(*args, **kw)
        except Exception as exc:   # noqa: BLE001 - report every failure
            self.failed.append(label)
            print("FAIL %s: %s: %s" % (label, type(exc).__name__, exc),
                  flush=True)
            if os.environ.get("PB_IT_VERBOSE"):
                traceback.print_exc()
            return False
        self.passed += 1
        print("ok   %s (%.2fs)" % (label, time.time() - t0), flush=True)
        return True

    def finish(self):
        if SANITIZER_REPORTS:
            self.failed.append("sanitizer reports in pb-journal's output")
        print("%s: %d passed, %d failed (%.1fs)%s" % (
            self.name, self.passed, len(self.failed),
            time.time() - self.started,
            "" if not self.failed else ": " + ", ".join(self.failed)),
            flush=True)
        sys.exit(1 if self.failed else 0)


def parse_args(extra=None):
    """Common arguments: --bin-dir DIR or --journal PATH."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", default=os.environ.get("PB_BIN_DIR", "."))
    ap.add_argument("--journal", help="path of pb-journal")
    ap.add_argument("--verbose", action="store_true")
    if extra:
        extra(ap)
    args = ap.parse_args()
    if not args.journal:
        args.journal = find_journal(args.bin_dir)
    return args
