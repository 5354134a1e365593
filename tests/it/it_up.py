#!/usr/bin/python3
"""it_up - pbctl up: the journal and the three workers, supervised

Runs `pbctl up --json` as a process on free ports and a temp data dir, the
way deploy/run.sh does, and checks what it promises against the processes
themselves (/proc) and against the journal (read with the harness's own
client, pbtest.Replayer):

  usage       --help exits 0; an unknown option, a --bin-dir without the
              binaries, an unreadable --registry exit 2 and start nothing
  start       pb-journal, pb-nac, pb-cpe and pb-activity run (their pids
              from the 'ready' event, checked in /proc); the reference data
              is in the log once (every line of deploy/registry.jsonl);
              every worker catches up (pbctl status); each serves /health
              on its --metrics-port, ready once caught up
  second      a second up on the same data dir exits 2, naming the first's pid
  restart     kill -9 of a worker: up logs the exit and starts it again
              (a new pid that runs and catches up); the same for the journal
  stop        SIGTERM to up: every child stops, up exits 0
  again       up on the same data dir loads nothing new: no 'registry'
              event, 'already loaded' in its log, the registry events of the
              log unchanged; SIGTERM exits 0 again

Run: /usr/bin/python3 tests/it/it_up.py --bin-dir BUILD
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pbtest  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REGISTRY = os.path.abspath(os.path.join(HERE, "..", "..", "deploy", "registry.jsonl"))
NAMES = ("journal", "nac", "cpe", "activity")


def registry_lines():
    with open(REGISTRY) as f:
        return [json.loads(line) for line in f
                if line.strip() and not line.lstrip().startswith("#")]


def find_pbctl(bin_dir):
    for cand in (os.path.join(bin_dir, "services", "ctl", "pbctl"),
                 os.path.join(bin_dir, "pbctl")):
        if os.path.isfile(cand):
            return cand
    raise SystemExit("pbctl not found under %s" % bin_dir)


def pid_alive(pid):
    """True if 'pid' runs and is not a zombie"""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def pid_binary(pid):
    try:
        return os.path.basename(os.readlink("/proc/%d/exe" % pid))
    except OSError:
        return None


def metrics_base():
    """P such that P..P+3 are free and ours (pbctl up serves /metrics
    there): P from free_port, the next three taken the same way"""
    while True:
        base = pbtest.free_port()
        if base + 3 < 32000 and all(pbtest.take_port(port)
                                    for port in range(base + 1, base + 4)):
            return base


def wait_ready_http(port, timeout=30):
    """Until GET /health on 127.0.0.1:port answers 200"""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/health" % port,
                                        timeout=3) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError) as err:
            last = err
        time.sleep(0.2)
    raise AssertionError("/health on %d not ready in %ds: %s" % (port, timeout, last))


class Up:
    """One `pbctl up --json` with its data dir and ports; events are the
    JSON lines of its stdout (the children's logs go there too)."""

    def __init__(self, pbctl, bin_dir, data_dir):
        self.pbctl = pbctl
        self.bin_dir = bin_dir
        self.data_dir = data_dir
        ports = set()
        while len(ports) < 3:
            ports.add(pbtest.free_port())
        ports = sorted(ports)
        self.ingest = "tcp://127.0.0.1:%d" % ports[0]
        self.fanout = "tcp://127.0.0.1:%d" % ports[1]
        self.replay = "tcp://127.0.0.1:%d" % ports[2]
        self.metrics_port = metrics_base()
        self.proc = None
        self.known_pids = set()

    def argv(self, *extra):
        return [self.pbctl, "up", "--json", "--data-dir", self.data_dir,
                "--bin-dir", self.bin_dir, "--registry", REGISTRY,
                "--ingest", self.ingest, "--fanout", self.fanout,
                "--replay", self.replay,
                "--metrics-port", str(self.metrics_port)] + list(extra)

    def start(self):
        fd, self.out_path = tempfile.mkstemp(prefix="pb-it-up-", suffix=".out")
        os.close(fd)
        self.err_path = self.out_path[:-4] + ".err"
        with open(self.out_path, "ab") as out, open(self.err_path, "ab") as err:
            self.proc = subprocess.Popen(self.argv(), stdout=out, stderr=err)
        return self

    def text(self, which="out"):
        path = self.out_path if which == "out" else self.err_path
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def events(self):
        found = []
        for line in self.text().splitlines():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except ValueError:
                    pass
        return found

    def wait_event(self, pred, timeout, what):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for event in self.events():
                if pred(event):
                    if "pid" in event:
                        self.known_pids.add(event["pid"])
                    return event
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError("no %s event in %.0fs (up %s); stderr tail:\n%s"
                             % (what, timeout, "exited %s" % self.proc.returncode
                                if self.proc.poll() is not None else "runs",
                                "\n".join(self.text("err").splitlines()[-15:])))

    def ready(self, timeout=60):
        event = self.wait_event(lambda e: e.get("event") == "ready", timeout, "ready")
        for s in event["services"]:
            self.known_pids.add(s["pid"])
        return event

    def term(self, timeout=60):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def close(self):
        """Whatever happened: up and every child it had are gone after this"""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for pid in self.known_pids:
            if pid_alive(pid) and pid_binary(pid) in ("pb-" + n for n in NAMES):
                os.kill(pid, signal.SIGKILL)
        for path in (getattr(self, "out_path", None), getattr(self, "err_path", None)):
            #  up's and its children's output: any sanitizer report fails
            try:
                with open(path, "rb") as f:
                    text = f.read().decode("utf-8", "replace")
            except (OSError, TypeError):
                text = ""
            for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                           "runtime error:"):
                if marker in text:
                    at = text.find(marker)
                    pbtest.SANITIZER_REPORTS.append(text[max(0, at - 200):at + 3000])
                    print("SANITIZER REPORT:\n" + pbtest.SANITIZER_REPORTS[-1], flush=True)
                    break
            if path and not os.environ.get("PB_IT_KEEP"):
                try:
                    os.unlink(path)
                except OSError:
                    pass


def registry_in_log(up):
    """The events of deploy/registry.jsonl found in the log (by src and
    id), read with the harness's client"""
    want = {(e["src"], e["id"]) for e in registry_lines()}
    with pbtest.Replayer(up, timeout=10) as r:
        events, _, _ = r.replay(1)
    return [env for _, _, env, _ in events if (env.get("src"), env.get("id")) in want]


def worker_applied(up, pbctl):
    args = [pbctl, "status", "--json", "--rate-ms", "0", "--replay", up.replay]
    for name in NAMES[1:]:
        args += ["--worker", "%s=%s" % (name, os.path.join(up.data_dir, name))]
    proc = subprocess.run(args, capture_output=True, timeout=30)
    report = json.loads(proc.stdout.decode().splitlines()[0])
    return report["head"], {w["name"]: w.get("applied_seq", -1) for w in report["workers"]}


def wait_caught_up(up, pbctl, at_least, timeout=60):
    deadline = time.time() + timeout
    applied = {}
    while time.time() < deadline:
        try:
            _, applied = worker_applied(up, pbctl)
            if all(v >= at_least for v in applied.values()):
                return applied
        except (ValueError, IndexError, subprocess.TimeoutExpired):
            pass
        time.sleep(0.3)
    raise AssertionError("workers not caught up to %d: %s" % (at_least, applied))


# ---------------------------------------------------------------------------


def check_usage(pbctl, bin_dir, tmp):
    def run(*args):
        return subprocess.run([pbctl, "up"] + list(args), capture_output=True,
                              timeout=30)
    proc = run("--help")
    assert proc.returncode == 0 and b"--data-dir" in proc.stdout, proc
    proc = run("--bogus")
    assert proc.returncode == 2 and b"--bogus" in proc.stderr, proc
    empty = os.path.join(tmp, "no-binaries")
    os.mkdir(empty)
    proc = run("--bin-dir", empty, "--data-dir", os.path.join(tmp, "x"))
    assert proc.returncode == 2 and b"pb-journal not found" in proc.stderr, proc
    proc = run("--bin-dir", bin_dir, "--data-dir", os.path.join(tmp, "y"),
               "--registry", os.path.join(tmp, "nonexistent.jsonl"))
    assert proc.returncode == 2 and b"cannot read" in proc.stderr, proc
    proc = run("--data-dir")
    assert proc.returncode == 2, proc


def check_start(up, pbctl, state):
    event = up.ready()
    assert event["ingest"] == up.ingest and event["replay"] == up.replay, event
    names = [s["name"] for s in event["services"]]
    assert names == list(NAMES), names
    for s in event["services"]:
        assert pid_alive(s["pid"]), s
        assert pid_binary(s["pid"]) == "pb-" + s["name"], (s, pid_binary(s["pid"]))
    state["pids"] = {s["name"]: s["pid"] for s in event["services"]}
    for i, s in enumerate(event["services"]):
        assert s["metrics"] == "http://127.0.0.1:%d/metrics" % (up.metrics_port + i), s
    loaded = up.wait_event(lambda e: e.get("event") == "registry", 10, "registry")
    want = registry_lines()
    assert loaded["events"] == len(want), loaded
    got = registry_in_log(up)
    assert sorted(e["id"] for e in got) == sorted(e["id"] for e in want), \
        (len(got), len(want))
    state["registry"] = [(e["seq"], e["id"]) for e in got]
    head = max(seq for seq, _ in state["registry"])
    wait_caught_up(up, pbctl, head)
    for i in range(len(NAMES)):          # each serves /health, ready once caught up
        wait_ready_http(up.metrics_port + i)
    assert os.path.isfile(os.path.join(up.data_dir, ".registry-loaded"))
    assert oct(os.stat(up.data_dir).st_mode & 0o777) == "0o700"


def check_second(up, pbctl):
    """A second up on the same data dir is refused, and changes nothing"""
    proc = subprocess.run(up.argv(), capture_output=True, timeout=30)
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "in use by another pbctl up (pid %d)" % up.proc.pid in err, \
        (proc.returncode, err)
    assert up.proc.poll() is None


def check_restart(up, pbctl, state, name):
    old = state["pids"][name]
    os.kill(old, signal.SIGKILL)
    exited = up.wait_event(lambda e: e.get("event") == "exited" and e["pid"] == old,
                           10, "exited %s" % name)
    assert exited["name"] == name and exited["how"] == "signal 9", exited
    restarted = up.wait_event(lambda e: e.get("event") == "restarted" and e["name"] == name
                              and e["pid"] != old, 20, "restarted %s" % name)
    new = restarted["pid"]
    time.sleep(0.3)
    assert pid_alive(new) and pid_binary(new) == "pb-" + name, new
    assert "up: %s exited (signal 9)" % name in up.text("err"), up.text("err")[-2000:]
    state["pids"][name] = new
    #  Everything works again: the journal answers, every worker catches up
    head, _ = worker_applied(up, pbctl)
    wait_caught_up(up, pbctl, head)
    wait_ready_http(up.metrics_port + NAMES.index(name))


def check_stop(up, state):
    rc = up.term()
    assert rc == 0, "up exited %s; stderr tail:\n%s" % (rc, up.text("err")[-2000:])
    for name, pid in state["pids"].items():
        assert not pid_alive(pid), "%s pid %d still runs" % (name, pid)
    #  With --json, stdout is up's JSON lines alone (the services log to stderr)
    lines = [l for l in up.text().splitlines() if l.strip()]
    assert lines and all(l.startswith("{") and json.loads(l) for l in lines), lines[:5]
    assert "pb_worker: nac started" in up.text("err")
    stopped = [e for e in up.events() if e.get("event") == "stopped"]
    assert stopped and stopped[-1]["clean"] is True, stopped
    err = up.text("err")
    for name in NAMES:
        assert "up: stopped %s pid=%d exit 0" % (name, state["pids"][name]) in err, \
            (name, err[-2000:])


def check_again(up, pbctl, state):
    up.ready()
    #  The registry is decided before 'ready' is printed
    assert not any(e.get("event") == "registry" for e in up.events()), up.events()
    assert "reference data already loaded" in up.text("err")
    got = registry_in_log(up)
    assert [(e["seq"], e["id"]) for e in got] == state["registry"], len(got)
    rc = up.term()
    assert rc == 0, rc


def main():
    args = pbtest.parse_args()
    pbctl = find_pbctl(args.bin_dir)
    results = pbtest.Results("it_up")
    tmp = tempfile.mkdtemp(prefix="pb-it-up-")
    data_dir = os.path.join(tmp, "var")
    state = {}
    try:
        results.run("usage: --help, bad options, missing binaries or registry",
                    check_usage, pbctl, args.bin_dir, tmp)
        up = Up(pbctl, args.bin_dir, data_dir).start()
        try:
            if results.run("start: four services, registry once, workers caught up",
                           check_start, up, pbctl, state):
                results.run("second: another up on the same data dir is refused",
                            check_second, up, pbctl)
                results.run("restart: kill -9 of pb-nac is logged and restarted",
                            check_restart, up, pbctl, state, "nac")
                results.run("restart: kill -9 of pb-journal is logged and restarted",
                            check_restart, up, pbctl, state, "journal")
                results.run("stop: SIGTERM stops every child, exit 0",
                            check_stop, up, state)
        finally:
            up.close()
        again = Up(pbctl, args.bin_dir, data_dir)
        again.ingest, again.fanout, again.replay = up.ingest, up.fanout, up.replay
        again.metrics_port = up.metrics_port
        again.start()
        try:
            results.run("again: same data dir loads nothing new; SIGTERM exit 0",
                        check_again, again, pbctl, state)
        finally:
            again.close()
    finally:
        subprocess.run(["rm", "-rf", tmp])
    results.finish()


if __name__ == "__main__":
    main()
