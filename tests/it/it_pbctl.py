#!/usr/bin/python3
"""it_pbctl - pbctl, the operator's tool, against a real pb-journal

Every subcommand is run as a process, the way an operator or a script runs
it, against pb-journal --clock manual on free ports and a temp data dir
(pbtest.Journal); what pbctl says is checked against what the journal holds,
read with the harness's own client (pbtest.Replayer), never with pbctl:

  help        pbctl --help and every subcommand's --help exit 0
  usage       bad command lines exit 2; a journal that does not answer, 3
  tick        TICKED seq for ms, a date and a date-time; the same now again
              answers the same seq; backwards is refused (exit 1)
  publish     ACK lines with their seq; a NAK line with code and error; a
              malformed line reported with its line number and nothing
              after it published (exit 1); --keep-going publishes the rest;
              --json result objects
  registry    deploy/registry.jsonl loaded twice: same seqs, head unchanged
  faithful    JSON integers stay msgpack integers, reals float64, strings
              str (checked on the stored envelope's bytes via replay)
  replay      ranges and prefixes equal the harness's replay, as JSON and as
              raw msgpack (byte for byte)
  status      head, log time, clock; a pb-nac store's applied_seq and lag
  state       a worker's state keys as JSON; no store, exit 1
  tail        --from 1 across a journal restart: every seq once, in order,
              for every type and for a prefix

Run: /usr/bin/python3 tests/it/it_pbctl.py --bin-dir BUILD
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pbtest  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REGISTRY = os.path.join(HERE, "..", "..", "deploy", "registry.jsonl")
SUBCOMMANDS = ("publish", "tick", "status", "replay", "tail", "state")


class Ctl:
    """pbctl with the journal's endpoints"""

    def __init__(self, binary, journal):
        self.binary = binary
        self.journal = journal

    def endpoints(self):
        j = self.journal
        return ["--ingest", j.ingest, "--fanout", j.fanout, "--replay", j.replay]

    def argv(self, sub, *args):
        return [self.binary, sub] + self.endpoints() + list(args)

    def run(self, sub, *args, stdin=None, timeout=60):
        proc = subprocess.run(self.argv(sub, *args), input=stdin,
                              capture_output=True, timeout=timeout)
        pbtest_check_sanitizer(proc.stderr)
        return proc.returncode, proc.stdout, proc.stderr

    def json_lines(self, sub, *args, stdin=None):
        rc, out, err = self.run(sub, "--json", *args, stdin=stdin)
        return rc, [json.loads(line) for line in out.decode().splitlines()], err


def pbtest_check_sanitizer(stderr):
    text = stderr.decode("utf-8", "replace")
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:"):
        if marker in text:
            pbtest.SANITIZER_REPORTS.append(text[text.find(marker):][:2000])
            raise AssertionError("sanitizer report from pbctl:\n%s" % text[:2000])


def env_line(id_, type_="registry.ally", src="it", data=None, **extra):
    env = {"id": id_, "src": src, "type": type_,
           "data": data if data is not None else
           {"country": "FRA", "name": "France", "joined": "1949-04-04"}}
    env.update(extra)
    return json.dumps(env)


def head(journal):
    with pbtest.Replayer(journal) as r:
        return r.status()["head"]


def log(journal, frm=1, to=None, prefixes=None):
    with pbtest.Replayer(journal, timeout=30) as r:
        events, end, _ = r.replay(frm, to=to, prefixes=prefixes)
    return events


def find_pbctl(bin_dir):
    path = os.path.join(bin_dir, "services", "ctl", "pbctl")
    if not os.access(path, os.X_OK):
        raise SystemExit("pbctl not found under %s" % bin_dir)
    return path


# ---------------------------------------------------------------------------
# Checks


def check_help(ctl):
    proc = subprocess.run([ctl.binary, "--help"], capture_output=True, timeout=10)
    assert proc.returncode == 0 and b"Usage" in proc.stdout, proc
    for sub in SUBCOMMANDS:
        proc = subprocess.run([ctl.binary, sub, "--help"], capture_output=True,
                              timeout=10)
        assert proc.returncode == 0, (sub, proc.returncode, proc.stderr)
        assert b"Usage: pbctl " + sub.encode() in proc.stdout, (sub, proc.stdout)
        assert b"Exit codes" in proc.stdout, (sub, proc.stdout)


def check_usage(ctl):
    for argv in (["nosuch"], [], ["tick"], ["tick", "--now", "2023-02-29"],
                 ["tick", "--now", "yesterday"], ["replay", "--from", "5", "--to", "2"],
                 ["replay", "--format", "xml"], ["publish", "a", "b"],
                 ["status", "--worker", "nac"], ["tail", "--from", "0"],
                 ["publish", "--timeout", "x"], ["state"]):
        proc = subprocess.run([ctl.binary] + argv, capture_output=True, timeout=10)
        assert proc.returncode == 2, (argv, proc.returncode, proc.stderr)


def check_unreachable(ctl):
    dead = "tcp://127.0.0.1:%d" % pbtest.free_port()
    base = ["--ingest", dead, "--replay", dead, "--timeout", "1"]
    for sub, extra, stdin in (("status", [], None), ("tick", ["--now", "5"], None),
                              ("replay", [], None),
                              ("publish", ["--json"], env_line("u-1").encode())):
        t0 = time.time()
        proc = subprocess.run([ctl.binary, sub] + base + extra, input=stdin,
                              capture_output=True, timeout=20)
        assert proc.returncode == 3, (sub, proc.returncode, proc.stderr)
        assert time.time() - t0 < 10, sub
        if sub == "publish":
            result = json.loads(proc.stdout.decode().splitlines()[0])
            assert result == {"line": 1, "result": "timeout", "id": "u-1"}, result


def check_tick(ctl, journal):
    rc, out, err = ctl.run("tick", "--now", "2026-01-01")
    assert rc == 0, (rc, err)
    assert out.decode().startswith("TICKED seq 1 now 1767225600000 "), out
    rc, lines, _ = ctl.json_lines("tick", "--now", "2026-01-01T12:00:00Z")
    assert rc == 0 and lines == [{"seq": 2, "now": 1767268800000}], lines
    rc, lines, _ = ctl.json_lines("tick", "--now", "1767268800000")
    assert rc == 0 and lines == [{"seq": 2, "now": 1767268800000}], lines  # same now
    rc, lines, _ = ctl.json_lines("tick", "--now", "1000")
    assert rc == 1 and lines[0]["code"] == "backwards", (rc, lines)
    rc, out, _ = ctl.run("tick", "--now", "2025-12-31")
    assert rc == 1 and out.startswith(b"ERROR backwards"), (rc, out)
    assert head(journal) == 2
    ticks = log(journal, prefixes=["sys.tick"])
    assert [e[2]["data"]["now"] for e in ticks] == [1767225600000, 1767268800000]


def check_publish(ctl, journal):
    start = head(journal)
    lines = [env_line("p-1"),
             "",
             "# a comment",
             env_line("p-2", data={"country": "FRA"}),          # NAK bad_data
             env_line("p-3", data={"country": "ITA", "name": "Italy",
                                   "joined": "1949-04-04"}),
             '{"id": "p-4", "src": "it", ',                       # line 6
             env_line("p-5", data={"country": "ESP", "name": "Spain",
                                   "joined": "1982-05-30"})]
    text = ("\n".join(lines) + "\n").encode()
    rc, out, err = ctl.run("publish", stdin=text)
    assert rc == 1, (rc, err)
    got = out.decode().splitlines()
    assert got[0] == "line 1: ACK p-1 seq %d" % (start + 1), got
    assert got[1].startswith("line 4: NAK p-2 bad_data: data."), got
    assert got[2] == "line 5: ACK p-3 seq %d" % (start + 2), got
    assert got[3].startswith("line 6: invalid JSON: "), got
    assert len(got) == 4, got                                    # nothing after
    assert b"line 6" in err, err
    assert head(journal) == start + 2
    assert [e[2]["id"] for e in log(journal, start + 1)] == ["p-1", "p-3"]

    # --keep-going, --json: the same lines again, and the rest published
    path = os.path.join(journal.data_dir, "in.jsonl")
    with open(path, "wb") as f:
        f.write(text)
    rc, results, err = ctl.json_lines("publish", "--keep-going", path)
    assert rc == 1, (rc, err)
    assert [r["line"] for r in results] == [1, 4, 5, 6, 7], results
    assert results[0] == {"line": 1, "result": "ACK", "id": "p-1", "seq": start + 1}
    assert results[1]["result"] == "NAK" and results[1]["code"] == "bad_data"
    assert results[1]["id"] == "p-2" and results[1]["error"].startswith("data.")
    assert results[2]["seq"] == start + 2                         # same seq
    assert results[3]["result"] == "invalid" and "column" in results[3]["error"]
    assert results[4] == {"line": 7, "result": "ACK", "id": "p-5", "seq": start + 3}
    assert head(journal) == start + 3

    # all good: exit 0; an envelope the journal refuses as a whole: NAK
    rc, results, _ = ctl.json_lines("publish", stdin=(env_line("p-6") + "\n").encode())
    assert rc == 0 and results[0]["result"] == "ACK", results
    rc, results, _ = ctl.json_lines("publish", stdin=b'[1, 2]\n"x"\n')
    assert rc == 1 and [r["result"] for r in results] == ["NAK", "NAK"], results
    # id conflict: same (src, id), other content
    rc, results, _ = ctl.json_lines("publish", stdin=(env_line(
        "p-6", data={"country": "DEU", "name": "Germany",
                     "joined": "1955-05-06"}) + "\n").encode())
    assert rc == 1 and results[0]["code"] == "id_conflict", results


def check_registry_twice(ctl, journal):
    rc, first, err = ctl.json_lines("publish", REGISTRY)
    assert rc == 0, (rc, err, [r for r in first if r["result"] != "ACK"][:3])
    assert len(first) > 50 and all(r["result"] == "ACK" for r in first)
    h = head(journal)
    rc, second, err = ctl.json_lines("publish", REGISTRY)
    assert rc == 0 and second == first, "second load differs"
    assert head(journal) == h


def check_faithful(ctl, journal):
    feedback = {"activity": "ACT-F", "from": "ITA", "relevance": 3,
                "effectiveness": 4, "comment": "7"}
    policy = {"discard_below": 2.0, "discard_min_feedbacks": 3}
    text = "\n".join([
        env_line("f-1", "activity.feedback", data=feedback, time=1767225600000),
        env_line("f-2", "registry.policy", data=policy),
        env_line("f-3", "activity.feedback", data=dict(feedback, relevance="3")),
    ]) + "\n"
    rc, results, _ = ctl.json_lines("publish", stdin=text.encode())
    assert [r["result"] for r in results] == ["ACK", "ACK", "NAK"], results
    assert results[2]["code"] == "bad_data" and "relevance" in results[2]["error"]
    events = {e[2]["id"]: e for e in log(journal, results[0]["seq"], results[1]["seq"])}
    env = events["f-1"][2]
    assert type(env["data"]["relevance"]) is int and env["data"]["relevance"] == 3
    assert type(env["time"]) is int and env["time"] == 1767225600000
    assert env["data"]["comment"] == "7"
    raw = events["f-1"][3]
    assert b"\xa9relevance\x03" in raw, raw                      # fixint 3
    assert b"\xa7comment\xa17" in raw, raw                        # str "7"
    env = events["f-2"][2]
    assert type(env["data"]["discard_below"]) is float
    assert b"\xaddiscard_below\xcb\x40\x00\x00\x00\x00\x00\x00\x00" in events["f-2"][3]
    assert type(env["data"]["discard_min_feedbacks"]) is int
    # and back out through pbctl replay: 2.0 stays a real, 3 an integer
    rc, out, _ = ctl.run("replay", "--from", str(results[0]["seq"]),
                         "--to", str(results[1]["seq"]))
    assert rc == 0
    text = out.decode()
    assert '"relevance":3,' in text and '"discard_below":2.0,' in text, text
    assert '"comment":"7"' in text, text


def check_replay(ctl, journal):
    everything = log(journal)
    h = head(journal)
    rc, lines, _ = ctl.json_lines("replay")
    assert rc == 0 and lines == [e[2] for e in everything], "full replay differs"
    rc, lines, _ = ctl.json_lines("replay", "--from", "3", "--to", "9")
    assert [l["seq"] for l in lines] == list(range(3, 10)), lines
    assert lines == [e[2] for e in everything[2:9]]
    rc, lines, _ = ctl.json_lines("replay", "--prefix", "registry.partner",
                                  "--prefix", "sys.")
    want = [e[2] for e in everything if e[1].startswith(("registry.partner", "sys."))]
    assert rc == 0 and lines == want and len(want) > 10, len(lines)
    rc, lines, _ = ctl.json_lines("replay", "--from", str(h + 5))
    assert rc == 0 and lines == []
    # msgpack: the stored bytes, byte for byte
    rc, out, _ = ctl.run("replay", "--format", "msgpack", "--prefix", "registry.")
    want = b"".join(e[3] for e in everything if e[1].startswith("registry."))
    assert rc == 0 and out == want, (len(out), len(want))
    # the human readable default is JSON lines too; no progress when not a tty
    rc, out, err = ctl.run("replay", "--to", "1")
    assert rc == 0 and len(out.splitlines()) == 1 and err == b"", err


def check_status(ctl, journal, bin_dir):
    h = head(journal)
    rc, lines, err = ctl.json_lines("status", "--worker", "none=/nonexistent/x")
    assert rc == 1, (rc, err)
    assert lines[0]["head"] == h and lines[0]["clock"] == "manual"
    assert lines[0]["now"] == 1767268800000
    assert lines[0]["workers"][0]["error"] == "no readable store"
    nac = os.path.join(bin_dir, "services", "nac", "pb-nac")
    if not os.access(nac, os.X_OK):
        print("     (pb-nac not built: worker status not checked)")
        return
    store = tempfile.mkdtemp(prefix="pb-it-ctl-nac-")
    argv = [nac, "--data-dir", store] + ctl.endpoints()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        worker = None
        while time.time() < deadline:
            rc, lines, err = ctl.json_lines("status", "--worker", "nac=" + store)
            worker = lines[0]["workers"][0] if lines else None
            if rc == 0 and worker and worker["applied_seq"] == lines[0]["head"]:
                break
            time.sleep(0.2)
        assert worker and worker["lag"] == 0 and worker["applied_seq"] >= h, (rc, lines, err)
        assert worker["now"] == 1767268800000, worker
        rc, out, _ = ctl.run("status", "--worker", "nac=" + store)
        text = out.decode()
        assert rc == 0 and "clock manual" in text and "nac " in text, text
        assert "lag 0" in text, text
        # state: the Council's keys, read-only, while the worker runs
        rc, out, _ = ctl.run("state", "--dir", store, "--json", "nac")
        assert rc == 0, rc
        keys = [json.loads(l) for l in out.decode().splitlines()]
        assert len(keys) > 10, keys[:3]
        assert all(set(k) == {"key", "value"} for k in keys)
        first = keys[0]["key"]
        rc, out, _ = ctl.run("state", "--dir", store, "nac", first)
        assert rc == 0 and out.decode().startswith(first + " = "), out
        rc, _, _ = ctl.run("state", "--dir", os.path.join(store, "none"), "nac")
        assert rc == 1
        assert not os.path.exists(os.path.join(store, "none"))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        subprocess.run(["rm", "-rf", store])


def _read_tail(proc_out, want_seqs, timeout):
    """Read JSON lines until every seq of want_seqs was seen; returns them."""
    seen = []
    deadline = time.time() + timeout
    with open(proc_out, "rb") as f:
        buf = b""
        while time.time() < deadline:
            chunk = f.read()
            buf += chunk
            *done, buf = buf.split(b"\n")
            seen += [json.loads(l)["seq"] for l in done if l]
            if set(want_seqs) <= set(seen):
                return seen
            if not chunk:
                time.sleep(0.1)
    return seen


def check_tail_restart(ctl, journal):
    outs = []
    procs = []
    try:
        for prefixes in ([], ["registry.ally", "notify."]):
            out = tempfile.NamedTemporaryFile(prefix="pb-it-tail-", delete=False)
            outs.append(out.name)
            procs.append(subprocess.Popen(
                ctl.argv("tail", "--json", "--from", "1", "--timeout", "2", *prefixes),
                stdout=out, stderr=subprocess.PIPE))
            out.close()
        time.sleep(0.5)
        batch = lambda tag, n: ("\n".join(env_line(
            "%s-%d" % (tag, i), data={"country": "FRA", "name": "France %d" % i,
                                      "joined": "1949-04-04"})
            for i in range(n)) + "\n").encode()
        rc, _, err = ctl.run("publish", stdin=batch("t-a", 50))
        assert rc == 0, err
        # a restart (SIGTERM) in the middle; events published right after it,
        # before the tails' SUB sockets reconnect, reach them only by a fill
        assert journal.term() == 0
        journal.start()
        rc, _, err = ctl.run("publish", stdin=batch("t-b", 30))
        assert rc == 0, err
        journal.kill9()
        journal.start()
        rc, _, err = ctl.run("publish", stdin=batch("t-c", 20))
        assert rc == 0, err
        everything = log(journal)
        all_seqs = [e[0] for e in everything]
        some_seqs = [e[0] for e in everything
                     if e[1].startswith(("registry.ally", "notify."))]
        got_all = _read_tail(outs[0], all_seqs, 30)
        got_some = _read_tail(outs[1], some_seqs, 30)
        assert got_all == all_seqs, "every type: %d of %d, %s" % (
            len(got_all), len(all_seqs), _first_diff(got_all, all_seqs))
        assert got_some == some_seqs, "prefixes: %d of %d, %s" % (
            len(got_some), len(some_seqs), _first_diff(got_some, some_seqs))
        # nothing more, no repeat, after a while with heartbeats
        time.sleep(1.5)
        assert _read_tail(outs[0], [], 0.1) == all_seqs
        fills = []
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0
            err = proc.stderr.read()
            pbtest_check_sanitizer(err)
            fills.append(err.count(b"from replay, seq"))
        print("     (fanout losses filled from replay: %d every type, %d prefixes)"
              % tuple(fills))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for path in outs:
            os.unlink(path)


def _first_diff(got, want):
    for i, (a, b) in enumerate(zip(got, want)):
        if a != b:
            return "first difference at index %d: %s != %s" % (i, a, b)
    return "lengths %d, %d" % (len(got), len(want))


def main():
    args = pbtest.parse_args()
    ctl_binary = find_pbctl(args.bin_dir)
    results = pbtest.Results("it_pbctl")
    with pbtest.Journal(args.journal, options={"heartbeat-interval": 200},
                        log_name="pb-journal-ctl") as journal:
        journal.start()
        ctl = Ctl(ctl_binary, journal)
        results.run("help: pbctl and every subcommand --help exit 0", check_help, ctl)
        results.run("usage: bad command lines exit 2", check_usage, ctl)
        results.run("unreachable journal: exit 3 within the timeout",
                    check_unreachable, ctl)
        results.run("tick: TICKED seq, same now, backwards refused",
                    check_tick, ctl, journal)
        results.run("publish: ACK, NAK, malformed line stops, --keep-going",
                    check_publish, ctl, journal)
        results.run("publish: registry.jsonl twice changes nothing",
                    check_registry_twice, ctl, journal)
        results.run("publish: integers, reals and strings kept", check_faithful,
                    ctl, journal)
        results.run("replay: ranges, prefixes, msgpack byte for byte",
                    check_replay, ctl, journal)
        results.run("status and state: journal and a pb-nac store",
                    check_status, ctl, journal, args.bin_dir)
        results.run("tail --from 1 across journal restarts: no gap, no repeat",
                    check_tail_restart, ctl, journal)
    results.finish()


if __name__ == "__main__":
    main()
