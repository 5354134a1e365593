#!/usr/bin/python3
"""it_pbctl_ops - pbctl's operator subcommands against real processes

pb-journal --clock manual and pb-nac on free ports and temp dirs; pbctl run
as a process the way an operator runs it; what it says is checked against
what the journal and the stores hold, read with the harness's own client
(pbtest.Replayer) and mdb tools, never with pbctl:

  rebuild     same as the live store (exit 0), and ops.rebuild logged with
              src ops and by; a store tampered with by a raw LMDB write
              (mdb_load) is found: the key is named with both values and
              the event that last wrote it (exit 1); --swap refused while
              the worker runs and when the stores differ, --swap --force
              on the stopped worker restores it (then same); usage errors
  skip        an event the log shows quarantined by nac (a notice logged
              under src nac) is quarantined by the rebuild, not applied,
              so the rebuild differs from the live store that applied it;
              a live pb-nac started on an empty store does the same (and
              appends nothing); after an ops.redrive in the log the rebuild
              applies it there and agrees again
  quarantine  a real quarantine (65 objectors) listed and shown; redrive
              logs ops.redrive (by, src ops) and nac fails it again, caused
              by the redrive; once 64 object, applied; the rebuild agrees
  trace       a meeting, the adoption it caused (nac), the activity that
              opened (activity): backward and forward, with depths
  export      export, import into a fresh journal: the same log byte for
              byte, the same log time, a resend still a duplicate, the hash
              chain intact; --resume after --to and after a cut tail
  import      resumes from a prefix; refused for a journal that is not a
              prefix, an automatic clock, a corrupted file (flipped byte,
              cut, garbage; the byte offset named, nothing imported), and
              raw IMPORT requests that break the rules (all or none)
  replay      --since/--until by ts (bisection), with prefixes and --to SEQ;
              tail --since; bad times refused
  replay --to re-publishes upstream events only, in their producer's form,
              to another journal's ingest; ops.replay logged on the source;
              a second run appends nothing; a dead target exits 3
  progress    export, import, replay, rebuild: progress on stderr when it
              is a terminal (a pty), nothing on stderr otherwise
  help        every operator subcommand's --help, listed in pbctl --help
  ops auth    ops.* accepted on ingest only from src ops

Run: /usr/bin/python3 tests/it/it_pbctl_ops.py --bin-dir BUILD
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pbtest  # noqa: E402
import system  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REGISTRY = os.path.join(HERE, "..", "..", "deploy", "registry.jsonl")
DEMO = os.path.join(HERE, "..", "..", "deploy", "demo.jsonl")


def check_sanitizer(stderr):
    text = stderr.decode("utf-8", "replace")
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:"):
        if marker in text:
            pbtest.SANITIZER_REPORTS.append(text[text.find(marker):][:2000])
            raise AssertionError("sanitizer report from pbctl:\n%s" % text[:2000])


class Ctl:
    def __init__(self, binary, journal):
        self.binary = binary
        self.journal = journal

    def run(self, sub, *args, stdin=None, timeout=120, env=None):
        j = self.journal
        argv = [self.binary, sub, "--ingest", j.ingest, "--fanout", j.fanout,
                "--replay", j.replay] + list(args)
        full_env = dict(os.environ)
        full_env.update(env or {})
        proc = subprocess.run(argv, input=stdin, capture_output=True,
                              timeout=timeout, env=full_env)
        check_sanitizer(proc.stderr)
        return proc.returncode, proc.stdout, proc.stderr

    def json(self, sub, *args, **kw):
        rc, out, err = self.run(sub, "--json", *args, **kw)
        lines = [json.loads(l) for l in out.decode().splitlines() if l.strip()]
        return rc, lines, err


def log(journal, frm=1, to=None, prefixes=None):
    with pbtest.Replayer(journal, timeout=30) as r:
        events, end, _ = r.replay(frm, to=to, prefixes=prefixes)
    return events


def head(journal):
    with pbtest.Replayer(journal) as r:
        return r.status()["head"]


def publish_file(ctl, path):
    with open(path, "rb") as f:
        rc, out, err = ctl.run("publish", stdin=f.read())
    assert rc == 0, (rc, out[-500:], err[-500:])


def wait_caught_up(worker, journal, timeout=60):
    system.wait_quiescent(journal, [worker], timeout=timeout, stable=0.5)


def ops_events(journal, type_):
    return [e for e in log(journal, prefixes=[type_])]


# ---------------------------------------------------------------------------


def check_ops_auth(ctl, journal):
    with pbtest.Producer(journal) as p:
        kind, body = p.publish(pbtest.envelope(
            "ops.redrive", "ops-auth-1", "it", {"worker": "nac", "seq": 1}))
        assert kind == "NAK" and body["code"] == "unauthorized", body
        kind, body = p.publish(pbtest.envelope(
            "ops.rebuild", "ops-auth-2", "ops",
            {"worker": "nac", "by": "it", "through": 0, "result": "same"}))
        assert kind == "ACK", body
        kind, body = p.publish(pbtest.envelope(
            "ops.rebuild", "ops-auth-3", "ops",
            {"worker": "nac", "by": "it", "through": 0, "result": "maybe"}))
        assert kind == "NAK" and body["code"] == "bad_data", body


def check_rebuild_same(ctl, journal, nac):
    wait_caught_up(nac, journal)
    before = head(journal)
    rc, out, err = ctl.json("rebuild", "nac", "--dir", nac.store_dir,
                            env={"USER": "op-alice"})
    assert rc == 0, (rc, out, err[-800:])
    [res] = out
    assert res["result"] == "same" and res["worker"] == "nac", res
    assert res["through"] >= before - 1 and not res["swapped"], res
    [ev] = log(journal, res["logged"], res["logged"])
    assert ev[1] == "ops.rebuild", ev
    env = ev[2]
    assert env["src"] == "ops" and env["data"]["by"] == "op-alice", env
    assert env["data"]["worker"] == "nac" and env["data"]["result"] == "same", env
    assert env["data"]["through"] == res["through"], env
    # text output for people
    rc, text, err = ctl.run("rebuild", "nac", "--dir", nac.store_dir)
    assert rc == 0 and b"same as a rebuild" in text, (rc, text, err[-500:])
    # the worker's endpoint from its configuration file (--config)
    cfg = nac.store_dir + ".cfg"
    with open(cfg, "w") as f:
        f.write('nac\n    replay = "%s"\n' % journal.replay)
    proc = subprocess.run([ctl.binary, "rebuild", "nac", "--dir", nac.store_dir,
                           "--config", cfg, "--ingest", journal.ingest, "--json"],
                          capture_output=True, timeout=60)
    check_sanitizer(proc.stderr)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-500:])
    assert json.loads(proc.stdout)["result"] == "same"
    with open(cfg, "w") as f:
        f.write('nac\n    replay = "tcp://127.0.0.1:%d"\n' % pbtest.free_port())
    proc = subprocess.run([ctl.binary, "rebuild", "nac", "--dir", nac.store_dir,
                           "--config", cfg, "--timeout", "1"], capture_output=True,
                          timeout=60)
    assert proc.returncode == 3 and b"failed" in proc.stderr, proc.stderr[-500:]
    os.unlink(cfg)
    # nothing but ops.rebuild was appended: no rebuilt notification
    types = [e[1] for e in log(journal, before + 1)]
    assert all(t in ("ops.rebuild",) or not t.startswith("notify.") for t in types), types
    # no leftover rebuild directory
    parent = os.path.dirname(nac.store_dir)
    assert not [d for d in os.listdir(parent) if ".rebuild." in d], os.listdir(parent)


def check_rebuild_usage(ctl, nac):
    for argv in (["rebuild"], ["rebuild", "journal"], ["rebuild", "nac", "--force"],
                 ["rebuild", "nac", "--bin", "/nonexistent/pb-nac"],
                 ["rebuild", "nac", "--what"]):
        rc, out, err = ctl.run(*argv)
        assert rc == 2, (argv, rc, err)
    rc, out, err = ctl.run("rebuild", "nac", "--dir", "/nonexistent/store")
    assert rc == 1 and b"no readable store" in err, (rc, err)
    # a store that applied nothing (one key put by hand): nothing to rebuild
    fresh = tempfile.mkdtemp(prefix="pb-empty-")
    try:
        mdb_put(fresh, "state", "by/hand", "c3")
        rc, out, err = ctl.json("rebuild", "nac", "--dir", fresh)
        assert rc == 1 and out[0]["through"] == 0 and out[0]["key"] == "by/hand", (rc, out, err)
        assert out[0]["cause"] is None and out[0]["rebuilt"] is None, out
        rc, out, err = ctl.run("rebuild", "nac", "--dir", fresh, "--swap")
        assert rc == 1 and b"applied nothing" in err, (rc, err)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
    rc, out, err = ctl.run("rebuild", "--help")
    assert rc == 0 and b"Usage: pbctl rebuild" in out and b"Exit codes" in out


def mdb_put(store, db, key, value_hex):
    """A raw LMDB write into the live store, as a hand or a bug would"""
    escaped = "".join("\\" + value_hex[i:i + 2] for i in range(0, len(value_hex), 2))
    text = "%s\n%s\n" % (key, escaped)
    proc = subprocess.run(["mdb_load", "-T", "-s", db, store], input=text.encode(),
                          capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


def mdb_get(store, db, key):
    proc = subprocess.run(["mdb_dump", "-p", "-s", db, store], capture_output=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode().splitlines()
    for i, line in enumerate(lines):
        if line == " " + key:
            return lines[i + 1][1:]
    return None


def state_keys(store):
    proc = subprocess.run(["mdb_dump", "-p", "-s", "state", store],
                          capture_output=True, timeout=30)
    lines = proc.stdout.decode().splitlines()
    start = lines.index("HEADER=END") + 1
    return [l[1:] for l in lines[start:-1:2]]


def check_rebuild_tampered(ctl, journal, nac):
    wait_caught_up(nac, journal)
    keys = state_keys(nac.store_dir)
    key = next(k for k in keys if "demo-cpe-GEO" in k)
    # --swap refused while the worker runs
    rc, out, err = ctl.run("rebuild", "nac", "--dir", nac.store_dir, "--swap")
    assert rc == 1 and b"worker is running" in err, (rc, out, err[-500:])
    nac.term()
    mdb_put(nac.store_dir, "state", key, "c0")          # msgpack nil
    rc, out, err = ctl.json("rebuild", "nac", "--dir", nac.store_dir)
    assert rc == 1, (rc, out, err[-800:])
    [res] = out
    assert res["result"] == "differs" and res["db"] == "state" and res["key"] == key, res
    assert res["live"] is None and res["rebuilt"] is not None, res
    cause = res["cause"]
    [ev] = log(journal, cause, cause)
    assert ev[1].startswith("nac.") and ev[2]["data"].get("proposal") == "demo-cpe-GEO", ev
    assert res["cause_type"] == ev[1], res
    [logged] = log(journal, res["logged"], res["logged"])
    assert logged[1] == "ops.rebuild" and logged[2]["data"]["result"] == "differs"
    assert logged[2]["data"]["key"] == "state " + key and logged[2]["data"]["cause"] == cause
    # text output names it too
    rc, text, err = ctl.run("rebuild", "nac", "--dir", nac.store_dir)
    assert rc == 1 and key.encode() in text and b"made by seq %d" % cause in text, text
    # --swap without --force refuses a store that differs
    rc, out, err = ctl.run("rebuild", "nac", "--dir", nac.store_dir, "--swap")
    assert rc == 1 and b"not swapped" in err, (rc, err[-500:])
    assert mdb_get(nac.store_dir, "state", key) == "\\c0"
    # --swap --force restores the store from the log
    rc, out, err = ctl.json("rebuild", "nac", "--dir", nac.store_dir, "--swap", "--force")
    assert rc == 1 and out[0]["swapped"], (rc, out, err[-500:])
    assert mdb_get(nac.store_dir, "state", key) != "\\c0"
    assert os.path.exists(os.path.join(nac.store_dir, "data.mdb.pre-rebuild"))
    swaps = ops_events(journal, "ops.swap")
    assert swaps and swaps[-1][2]["data"]["result"] == "differs", swaps
    rc, out, err = ctl.json("rebuild", "nac", "--dir", nac.store_dir)
    assert rc == 0 and out[0]["result"] == "same", (rc, out, err[-500:])
    # the swapped-in store serves the worker
    nac.start()
    with pbtest.Producer(journal) as p:
        kind, body = p.publish(pbtest.envelope(
            "registry.ally", "ally-after-swap", "registry",
            {"country": "SWP", "name": "Swap", "joined": "2020-01-01"}))
        assert kind == "ACK", body
    wait_caught_up(nac, journal)
    rc, out, err = ctl.json("rebuild", "nac", "--dir", nac.store_dir)
    assert rc == 0 and out[0]["result"] == "same", (rc, out, err[-500:])


def check_rebuild_skips_quarantined(ctl, journal, nac):
    """The log is the record: a notice of nac's quarantine makes the
    rebuild quarantine that event; an ops.redrive makes it apply it."""
    wait_caught_up(nac, journal)
    with pbtest.Producer(journal) as p:
        kind, body = p.publish(pbtest.envelope(
            "registry.ally", "ally-QQQ", "registry",
            {"country": "QQQ", "name": "Quarantined", "joined": "2021-01-01"}))
        assert kind == "ACK", body
        s = body["seq"]
        # What an older nac would have logged had it refused seq s
        notice = {"id": "nac/%d/0" % s, "src": "nac", "type": "notify.nac.quarantined",
                  "cause": s, "data": {"seq": s, "type": "registry.ally",
                                       "reason": "simulated: older rules refused it"}}
        kind, body = p.publish(notice)
        assert kind == "ACK", body
    wait_caught_up(nac, journal)
    rc, out, err = ctl.json("rebuild", "nac", "--dir", nac.store_dir, "--keep")
    assert rc == 1, (rc, out, err[-800:])
    [res] = out
    # the live worker applied seq s, the rebuild did not
    assert res["db"] == "state" and "QQQ" in res["key"], res
    assert res["rebuilt"] is None and res["cause"] is None, res
    kept = err.decode().split("rebuilt store kept in ")[1].split()[0]
    fresh = system.Worker("nac", nac.binary, journal)
    try:
        dump = system.dump_store(nac.binary, kept).decode()
        line = [l for l in dump.splitlines() if l.startswith("quarantine %016x " % s)]
        assert line, dump[-2000:]
        # a live worker started on an empty store reads the log the same way:
        # it quarantines seq s too (its notice is the logged one, a duplicate)
        before = head(journal)
        fresh.start()
        wait_caught_up(fresh, journal)
        assert head(journal) == before, "the fresh worker appended something"
        lines = lambda d: [l for l in d.splitlines() if not l.startswith("meta ")]
        assert lines(fresh.dump().decode()) == lines(dump), "fresh live store != rebuild"
    finally:
        fresh.close()
        shutil.rmtree(kept, ignore_errors=True)
    # the operator redrives it: the rebuild applies it at the redrive
    rc, out, err = ctl.run("publish", stdin=json.dumps(
        {"id": "redrive-QQQ", "src": "ops", "type": "ops.redrive",
         "data": {"worker": "nac", "seq": s}}).encode())
    assert rc == 0, (out, err)
    wait_caught_up(nac, journal)
    rc, out, err = ctl.json("rebuild", "nac", "--dir", nac.store_dir)
    assert rc == 0 and out[0]["result"] == "same", (rc, out, err[-800:])


def publish_all(journal, envs):
    with pbtest.Producer(journal) as p:
        answers = p.publish_all(envs)
    assert all(k == "ACK" for k, _ in answers), answers[:3]
    return [body["seq"] for _, body in answers]


def check_quarantine(ctl, journal, nac):
    """a real quarantine (65 objectors: more than notify.nac.blocked holds),
    listed, shown, redriven (fails again), redriven once 64 object
    (applied, caused by the redrive), and the rebuild agrees"""
    allies = ["Q%s%s" % (a, b) for a in "ABC" for b in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"][:65]
    envs = [pbtest.envelope("registry.ally", "q-ally-%s" % a, "registry",
                            {"country": a, "name": a, "joined": "2030-01-01"})
            for a in allies]
    envs.append(pbtest.envelope("nac.proposal", "q-prop", "it", {
        "proposal": "big-1", "procedure": "meeting",
        "action": {"kind": "cpe.assign", "partner": "GEO", "ally": "NOR"}}))
    envs += [pbtest.envelope("nac.position", "q-obj-%s" % a, "it",
                             {"proposal": "big-1", "ally": a, "position": "object"})
             for a in allies]
    envs.append(pbtest.envelope("nac.meeting", "q-meet", "it",
                                {"proposal": "big-1", "outcome": "not_agreed"}))
    m = publish_all(journal, envs)[-1]
    wait_caught_up(nac, journal)
    store = ["--worker", "nac", "--dir", nac.store_dir]
    rc, out, err = ctl.json("quarantine", "list", *store)
    assert rc == 0, (rc, err)
    [rec] = [r for r in out if r.get("seq") == m]
    assert rec["type"] == "nac.meeting" and "64 objectors" in rec["reason"], rec
    rc, text, err = ctl.run("quarantine", "list", *store)
    assert rc == 0 and b"seq %d" % m in text and b"quarantined in 1 stores" in text, text
    # pbctl up's layout: DATA-DIR/nac (cpe and activity absent here)
    layout = tempfile.mkdtemp(prefix="pb-layout-")
    try:
        os.symlink(nac.store_dir, os.path.join(layout, "nac"))
        rc, out, err = ctl.json("quarantine", "list", "--data-dir", layout)
        assert rc == 0 and [r["seq"] for r in out if "seq" in r] == [m], (rc, out, err)
        rc, out, err = ctl.json("quarantine", "show", str(m), "--worker", "nac",
                                "--data-dir", layout)
        assert rc == 0 and out[0]["seq"] == m, (rc, out, err)
    finally:
        shutil.rmtree(layout, ignore_errors=True)
    rc, out, err = ctl.json("quarantine", "show", str(m), *store)
    assert rc == 0 and out[0]["event"]["data"]["proposal"] == "big-1", (rc, out, err)
    assert out[0]["event"]["seq"] == m
    # a redrive while 65 still object fails again, caused by the redrive
    rc, out, err = ctl.json("quarantine", "redrive", str(m), "--wait", "30", *store,
                            env={"USER": "op-carol"})
    assert rc == 1 and out[0]["outcome"] == "failed again", (rc, out, err)
    r1 = out[0]["logged"]
    [ev] = log(journal, r1, r1)
    assert ev[1] == "ops.redrive" and ev[2]["src"] == "ops", ev
    assert ev[2]["data"] == {"worker": "nac", "seq": m, "by": "op-carol"}, ev
    wait_caught_up(nac, journal)
    again = [e for e in log(journal, r1, prefixes=["notify.nac."])
             if e[2].get("cause") == r1]
    assert [e[1] for e in again] == ["notify.nac.quarantined"], again
    # one concurs: the redrive applies the meeting, blocked by 64
    publish_all(journal, [pbtest.envelope("nac.position", "q-concur", "it", {
        "proposal": "big-1", "ally": allies[0], "position": "concur"})])
    rc, out, err = ctl.json("quarantine", "redrive", str(m), "--wait", "30", *store)
    assert rc == 0 and out[0]["outcome"] == "applied", (rc, out, err)
    r2 = out[0]["logged"]
    wait_caught_up(nac, journal)
    blocked = [e for e in log(journal, r2, prefixes=["notify.nac."]) if e[2].get("cause") == r2]
    assert [e[1] for e in blocked] == ["notify.nac.blocked"], blocked
    assert blocked[0][2]["data"]["by"] == allies[1:]
    # nothing left to redrive; bad command lines
    rc, out, err = ctl.run("quarantine", "redrive", str(m), *store)
    assert rc == 1 and b"has not quarantined" in err, (rc, err)
    rc, out, err = ctl.run("quarantine", "show", "999999", *store)
    assert rc == 1, (rc, err)
    for argv in (["quarantine"], ["quarantine", "show", "5"], ["quarantine", "redrive",
                 "--worker", "nac"], ["quarantine", "list", "--worker", "journal"],
                 ["quarantine", "show", "0", "--worker", "nac"],
                 ["quarantine", "list", "--wait", "3"], ["quarantine", "fix"]):
        rc, out, err = ctl.run(*argv)
        assert rc == 2, (argv, rc, err)
    rc, out, err = ctl.run("quarantine", "list", "--worker", "nac", "--dir", "/nonexistent")
    assert rc == 1, (rc, err)
    # the log is the record: a rebuild quarantines m, fails it again at r1,
    # applies it at r2, and so equals the live store
    rc, out, err = ctl.json("rebuild", "nac", "--dir", nac.store_dir)
    assert rc == 0 and out[0]["result"] == "same", (rc, out, err[-800:])


def check_trace(ctl, journal, workers):
    """backward and forward through two workers: a meeting, the adoption
    it caused (nac), the activity it opened (activity)"""
    seqs = publish_all(journal, [
        pbtest.envelope("activity.registered", "t-act", "it", {
            "activity": "ACT-T", "title": "Trace", "area": "operations",
            "tool": "PCM", "partners": ["GEO"]}),
        pbtest.envelope("nac.proposal", "t-prop", "it", {
            "proposal": "p-trace", "procedure": "meeting",
            "action": {"kind": "activity.open", "activity": "ACT-T", "partners": ["UKR"]}}),
        pbtest.envelope("nac.meeting", "t-meet", "it",
                        {"proposal": "p-trace", "outcome": "agreed"})])
    m = seqs[-1]
    for w in workers:
        wait_caught_up(w, journal)
    notes = log(journal, m, prefixes=["notify."])
    [adopted] = [e for e in notes if e[2].get("cause") == m and e[1] == "notify.nac.adopted"]
    a = adopted[0]
    opened = [e for e in notes if e[2].get("cause") == a and e[1] == "notify.activity.opened"]
    assert opened, [(e[0], e[1], e[2].get("cause")) for e in notes]
    o = opened[0][0]
    effects_of_m = sorted({e[0] for e in notes if e[2].get("cause") == m}
                          | {e[0] for e in notes if e[2].get("cause") in
                             {x[0] for x in notes if x[2].get("cause") == m}})
    rc, out, err = ctl.json("trace", str(m))
    assert rc == 0, (rc, err)
    assert out[0]["role"] == "event" and out[0]["event"]["seq"] == m, out[0]
    effects = [(l["event"]["seq"], l["depth"]) for l in out[1:]]
    assert (a, 1) in effects and (o, 2) in effects, effects
    assert all(l["role"] == "effect" for l in out[1:])
    assert [s for s, _ in effects] == sorted(s for s, _ in effects)
    assert set(s for s, _ in effects) >= set(effects_of_m), (effects, effects_of_m)
    # backward from the opened activity: the meeting, the adoption, itself
    rc, out, err = ctl.json("trace", str(o), "--to", str(o))
    assert rc == 0, (rc, err)
    assert [(l["role"], l["event"]["seq"], l["depth"]) for l in out] == \
        [("cause", m, 0), ("cause", a, 1), ("event", o, 2)], out
    rc, text, err = ctl.run("trace", str(o))
    assert rc == 0 and b"2 causes" in text and b"notify.nac.adopted" in text, text
    rc, out, err = ctl.run("trace", "99999999")
    assert rc == 1 and b"no event" in err, (rc, err)
    for argv in (["trace"], ["trace", "0"], ["trace", "x"], ["trace", "1", "2"]):
        rc, out, err = ctl.run(*argv)
        assert rc == 2, (argv, rc, err)
    # every worker of the chain agrees with its rebuild
    for w in workers:
        rc, out, err = ctl.json("rebuild", w.name, "--dir", w.store_dir)
        assert rc == 0 and out[0]["result"] == "same", (w.name, rc, out, err[-500:])


UPSTREAM = ("registry.", "nac.", "cpe.", "activity.")
OPS_SUBCOMMANDS = ("rebuild", "export", "import", "trace", "quarantine", "replay", "tail")


def check_help(ctl):
    for sub in OPS_SUBCOMMANDS:
        proc = subprocess.run([ctl.binary, sub, "--help"], capture_output=True, timeout=10)
        assert proc.returncode == 0, (sub, proc.returncode, proc.stderr)
        assert b"Usage: pbctl " + sub.encode() in proc.stdout, (sub, proc.stdout)
        assert b"Exit codes" in proc.stdout, (sub, proc.stdout)
    proc = subprocess.run([ctl.binary, "--help"], capture_output=True, timeout=10)
    for sub in OPS_SUBCOMMANDS:
        assert b"  " + sub.encode() + b" " in proc.stdout, (sub, proc.stdout)


def run_on_tty(argv, timeout=60):
    """Run with stderr on a pseudo-terminal; returns (rc, stdout, tty text)"""
    import pty
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    out = proc.stdout.read()
    rc = proc.wait(timeout)
    os.close(master)
    return rc, out, b"".join(chunks)


def check_progress(ctl, journal, nac, tmp):
    """long operations show progress on a terminal, nothing otherwise"""
    j = journal
    eps = ["--ingest", j.ingest, "--fanout", j.fanout, "--replay", j.replay]
    path = os.path.join(tmp, "progress.pbx")
    cases = [(["export", path], b"export: seq"),
             (["replay", "--format", "msgpack"], b"replay: "),
             (["rebuild", "nac", "--dir", nac.store_dir], b"rebuild nac: ")]
    for args, marker in cases:
        if os.path.exists(path):
            os.unlink(path)
        rc, out, tty = run_on_tty([ctl.binary] + args[:1] + eps + args[1:])
        assert rc == 0 and marker in tty, (args, rc, tty[-300:])
        if os.path.exists(path):
            os.unlink(path)
        rc, out, err = ctl.run(*args)
        assert rc == 0 and err == b"", (args, rc, err[-300:])
    # import, into a fresh journal each time
    ctl.run("export", path)
    for on_tty in (True, False):
        with pbtest.Journal(j.binary, log_name="pb-journal-import") as target:
            target.start()
            teps = ["--ingest", target.ingest, "--replay", target.replay]
            if on_tty:
                rc, out, tty = run_on_tty([ctl.binary, "import"] + teps + [path])
                assert rc == 0 and b"import: seq" in tty, (rc, tty[-300:])
            else:
                proc = subprocess.run([ctl.binary, "import"] + teps + [path],
                                      capture_output=True, timeout=60)
                assert proc.returncode == 0 and proc.stderr == b"", proc.stderr
    os.unlink(path)


def check_replay_time(ctl, journal):
    """replay and tail by time: ts ranges found by bisection"""
    events = log(journal)
    ts = [e[2]["ts"] for e in events]
    assert ts == sorted(ts), "ts went back in this log: the test assumes it does not"
    t1 = ts[len(ts) // 3]
    t2 = ts[2 * len(ts) // 3]
    want = [e[0] for e in events if e[2]["ts"] >= t1]
    rc, out, err = ctl.json("replay", "--since", str(t1))
    assert rc == 0 and [e["seq"] for e in out] == want, (rc, len(out), len(want), err)
    want = [e[0] for e in events if t1 <= e[2]["ts"] <= t2]
    rc, out, err = ctl.json("replay", "--since", str(t1), "--until", str(t2))
    assert rc == 0 and [e["seq"] for e in out] == want, (rc, len(out), len(want), err)
    want = [e[0] for e in events if e[2]["ts"] <= t2 and e[1].startswith("nac.")]
    rc, out, err = ctl.json("replay", "--until", str(t2), "--prefix", "nac.")
    assert rc == 0 and [e["seq"] for e in out] == want, (rc, len(out), len(want), err)
    for since, until in (("2000-01-01", "2000-01-02"), ("2999-01-01", None)):
        args = ["--since", since] + (["--until", until] if until else [])
        rc, out, err = ctl.json("replay", *args)
        assert rc == 0 and out == [], (args, rc, out[:2], err)
    rc, out, err = ctl.json("replay", "--since", "1970-01-01", "--to", "5")
    assert rc == 0 and [e["seq"] for e in out] == [1, 2, 3, 4, 5], (rc, out)
    for argv in (["--since", "yesterday"], ["--until", "2023-02-29"],
                 ["--since", "2020-01-02", "--until", "2020-01-01"]):
        rc, out, err = ctl.run("replay", *argv)
        assert rc == 2, (argv, rc, err)
    # tail --since: history from that time, then live
    want = [e[0] for e in events if e[2]["ts"] >= t2][:5]
    rc, out, err = ctl.json("tail", "--since", str(t2), "--count", str(len(want)),
                            timeout=30)
    assert rc == 0 and [e["seq"] for e in out] == want, (rc, out, err)
    rc, out, err = ctl.run("tail", "--since", str(t2), "--from", "3")
    assert rc == 2, (rc, err)


def check_replay_to(ctl, journal, jbin):
    """re-published to another journal: upstream events only, producer form"""
    source = log(journal)
    upstream = [e for e in source if e[1].startswith(UPSTREAM)]
    with pbtest.Journal(jbin, log_name="pb-journal-target") as target:
        target.start()
        before = head(journal)
        rc, out, err = ctl.json("replay", "--to", target.ingest, env={"USER": "op-dan"})
        assert rc == 0, (rc, out, err[-500:])
        res = out[0]
        assert res["events"] == len(upstream) and res["refused"] == 0, res
        assert res["from"] == 1 and res["through"] >= upstream[-1][0], res
        got = log(target)
        strip = lambda env: {k: v for k, v in env.items() if k not in ("seq", "ts")}
        assert [strip(e[2]) for e in got] == [strip(e[2]) for e in upstream]
        # logged on the source, after
        [ops] = log(journal, res["logged"], res["logged"])
        assert ops[1] == "ops.replay" and ops[2]["data"]["to"] == target.ingest, ops
        assert ops[2]["data"]["by"] == "op-dan" and ops[2]["data"]["events"] == len(upstream)
        assert res["logged"] > before
        # again: every event is a duplicate there, nothing appended
        n = head(target)
        rc, out, err = ctl.json("replay", "--to", target.ingest, "--prefix", "registry.")
        assert rc == 0 and out[0]["refused"] == 0, (rc, out, err)
        assert head(target) == n
    dead = "tcp://127.0.0.1:%d" % pbtest.free_port()
    rc, out, err = ctl.run("replay", "--to", dead, "--timeout", "1")
    assert rc == 3 and b"stopped answering" in err, (rc, err)
    rc, out, err = ctl.run("replay", "--to", dead, "--format", "msgpack")
    assert rc == 2, (rc, err)


def raw_log(journal, frm=1, to=None):
    return [(e[0], e[3]) for e in log(journal, frm, to)]


def check_export_import(ctl, journal, jbin, tmp):
    """export, import into a fresh journal: the same log seq for seq"""
    path = os.path.join(tmp, "full.pbx")
    rc, out, err = ctl.json("export", path)
    assert rc == 0, (rc, out, err[-500:])
    n = out[0]["through"]
    assert out[0]["from"] == 1 and n >= head(journal) - 1, out
    source = raw_log(journal, 1, n)
    assert len(source) == n
    rc, _, err = ctl.run("export", path)
    assert rc == 2 and b"exists" in err, (rc, err)
    # partial export, then --resume: the same events, in two blocks
    part = os.path.join(tmp, "part.pbx")
    rc, out, err = ctl.json("export", part, "--to", "40")
    assert rc == 0 and out[0]["through"] == 40, (rc, out, err)
    rc, out, err = ctl.json("export", part, "--resume", "--to", str(n))
    assert rc == 0 and out[0]["from"] == 41 and out[0]["through"] == n, (rc, out, err)
    # a cut tail (a kill in the middle of a block write): resumed from there
    cut = os.path.join(tmp, "cut.pbx")
    shutil.copy(part, cut)
    with open(cut, "r+b") as f:
        f.truncate(os.path.getsize(cut) - 7)
    rc, out, err = ctl.json("export", cut, "--resume", "--to", str(n))
    assert rc == 0 and out[0]["from"] == 41, (rc, out, err)
    assert b"dropping from byte" in err, err
    # an empty file (killed before its header) resumes from the start
    empty = os.path.join(tmp, "empty.pbx")
    open(empty, "wb").close()
    rc, out, err = ctl.json("export", empty, "--resume", "--to", "10")
    assert rc == 0 and out[0]["from"] == 1 and out[0]["through"] == 10, (rc, out, err)
    for name in (path, part, cut):
        with pbtest.Journal(jbin, log_name="pb-journal-import") as target:
            target.start()
            tctl = Ctl(ctl.binary, target)
            batch = ["--batch", "7"] if name == part else []
            rc, out, err = tctl.json("import", name, *batch, env={"USER": "op-bob"})
            assert rc == 0, (name, rc, out, err[-500:])
            assert out[0]["from"] == 1 and out[0]["through"] == n, out
            got = raw_log(target, 1, n)
            assert got == source, "imported log differs (%s)" % name
            [ops] = log(target, n + 1)
            assert ops[1] == "ops.import" and ops[2]["data"]["by"] == "op-bob", ops
            assert ops[2]["data"]["from"] == 1 and ops[2]["data"]["through"] == n
            if name != path:
                continue
            # the imported log's hash chain is whole
            rc, out, err = tctl.run("verify", "--dir", os.path.join(target.data_dir, "log"))
            assert rc == 0 and b"intact" in out, (rc, out, err)
            # the log time came with the ticks; a resend is still a duplicate
            with pbtest.Replayer(journal) as a, pbtest.Replayer(target) as b:
                assert a.status()["now"] == b.status()["now"]
            seq, _, env, _ = log(target, 1, 1)[0]
            resend = {k: v for k, v in env.items() if k not in ("seq", "ts")}
            with pbtest.Producer(target) as p:
                kind, body = p.publish(resend)
            assert kind == "ACK" and body["seq"] == seq, (kind, body)
            # importing again: the journal is no longer a prefix
            rc, out, err = tctl.run("import", name)
            assert rc == 1 and b"not a prefix" in err, (rc, err)


def check_import_resume(ctl, journal, jbin, tmp):
    """an import resumes from the target's head (a prefix of the file)"""
    full = os.path.join(tmp, "full.pbx")
    first = os.path.join(tmp, "first30.pbx")
    rc, _, err = ctl.run("export", first, "--to", "30")
    assert rc == 0, err
    n = log(journal)[-1][0]
    with pbtest.Journal(jbin, log_name="pb-journal-import") as target:
        target.start()
        tctl = Ctl(ctl.binary, target)
        # the first 30 by IMPORT, without its ops.import: a raw IMPORT
        with pbtest.Replayer(target) as r:
            frames = [b"IMPORT", pbtest.pack({"after": 0})] + \
                     [raw for _, raw in raw_log(journal, 1, 30)]
            r.sock.send_multipart(frames)
            kind, body = r.recv()
            assert kind == b"IMPORTED" and pbtest.unpack(body)["head"] == 30, (kind, body)
        rc, out, err = tctl.json("import", full)
        assert rc == 0 and out[0]["from"] == 31, (rc, out, err[-500:])
        assert raw_log(target, 1, 30) == raw_log(journal, 1, 30)
        with pbtest.Replayer(target) as r:
            assert r.status()["head"] >= 31
    with pbtest.Journal(jbin, log_name="pb-journal-import") as other:
        other.start()
        # a journal that is not a prefix of the file: refused, nothing added
        with pbtest.Producer(other) as p:
            kind, _ = p.publish(pbtest.envelope("registry.ally", "x-1", "registry",
                                                {"country": "XXA", "name": "X",
                                                 "joined": "2000-01-01"}))
            assert kind == "ACK"
        rc, out, err = Ctl(ctl.binary, other).run("import", full)
        assert rc == 1 and b"not a prefix" in err, (rc, err)
        assert head(other) == 1
    with pbtest.Journal(jbin, options={"clock": "auto"}, log_name="pb-journal-auto") as auto:
        auto.start()
        rc, out, err = Ctl(ctl.binary, auto).run("import", full)
        assert rc == 1 and b"--clock manual" in err, (rc, err)
    # a journal whose batch_max is below the request size: refused, resumable
    with pbtest.Journal(jbin, options={"batch-max": 5}, log_name="pb-journal-import") as small:
        small.start()
        sctl = Ctl(ctl.binary, small)
        rc, out, err = sctl.run("import", full)
        assert rc == 1 and b"IMPORT: want 1..5" in err and head(small) == 0, (rc, err)
        rc, out, err = sctl.json("import", full, "--batch", "5")
        assert rc == 0 and out[0]["through"] == n, (rc, out, err)
    for bad in ("0", "1001", "x"):
        rc, out, err = ctl.run("import", full, "--batch", bad)
        assert rc == 2, (bad, rc, err)


def check_import_corrupt(ctl, journal, jbin, tmp):
    """a corrupted export is refused with the offset; nothing imported"""
    full = os.path.join(tmp, "full.pbx")
    data = open(full, "rb").read()
    cases = []
    flipped = bytearray(data)
    at = len(data) // 2
    flipped[at] ^= 0x01
    cases.append(("flipped byte", bytes(flipped), at))
    cases.append(("cut", data[:-5], len(data)))
    cases.append(("not an export", b"\x81\xa1x\x01" + data[30:], 0))
    cases.append(("garbage after", data + b"\xc1", len(data)))
    with pbtest.Journal(jbin, log_name="pb-journal-import") as target:
        target.start()
        tctl = Ctl(ctl.binary, target)
        for label, content, at in cases:
            bad = os.path.join(tmp, "bad.pbx")
            with open(bad, "wb") as f:
                f.write(content)
            rc, out, err = tctl.run("import", bad)
            text = err.decode()
            assert rc == 1 and "nothing imported" in text, (label, rc, text)
            if label != "not an export":
                offset = int(text.split("corrupt at byte ")[1].split(":")[0])
                assert 0 < offset <= at, (label, offset, at, text)
            assert head(target) == 0, label
        rc, out, err = tctl.run("import", os.path.join(tmp, "nonexistent.pbx"))
        assert rc == 1 and b"cannot open" in err, (rc, err)
        # the journal refuses a raw IMPORT that breaks its rules, all or none
        with pbtest.Replayer(target) as r:
            events = [raw for _, raw in raw_log(journal, 1, 3)]
            for frames, want in (
                    ([pbtest.pack({"after": 5})] + events, b"IMPORT.after"),
                    ([pbtest.pack({"after": 0})] + events[1:], b"seq"),
                    ([pbtest.pack({"after": 0})] + events[:2] + [b"\xc1"], b"IMPORT[2]"),
                    ([pbtest.pack({"after": 0})], b"IMPORT: want"),
                    ([pbtest.pack({"after": 0})] + events[:1] + events[:1], b"IMPORT[1]")):
                r.sock.send_multipart([b"IMPORT"] + frames)
                kind, body = r.recv()
                assert kind == b"ERROR" and want in pbtest.unpack(body)["error"].encode(), \
                    (want, kind, body)
            assert r.status()["head"] == 0


def main():
    args = pbtest.parse_args()
    ctl_binary = os.path.join(args.bin_dir, "services", "ctl", "pbctl")
    nac_binary = system.find_worker(args.bin_dir, "nac")
    results = pbtest.Results("it_pbctl_ops")
    with pbtest.Journal(args.journal, options={"heartbeat-interval": 200},
                        log_name="pb-journal-ops") as journal:
        journal.start()
        ctl = Ctl(ctl_binary, journal)
        nac = system.Worker("nac", nac_binary, journal)
        activity = system.Worker("activity", system.find_worker(args.bin_dir, "activity"),
                                 journal)
        cpe = system.Worker("cpe", system.find_worker(args.bin_dir, "cpe"), journal)
        try:
            nac.start()
            activity.start()
            cpe.start()
            publish_file(ctl, REGISTRY)
            publish_file(ctl, DEMO)
            system.wait_quiescent(journal, [nac, activity, cpe], timeout=60, stable=0.5)
            results.run("--help of every operator subcommand", check_help, ctl)
            results.run("ops.* on ingest only from src ops", check_ops_auth, ctl, journal)
            results.run("rebuild: usage and missing store", check_rebuild_usage, ctl, nac)
            results.run("rebuild: same as live, ops.rebuild logged, nothing published",
                        check_rebuild_same, ctl, journal, nac)
            results.run("rebuild: a raw LMDB write is named with its event; "
                        "--swap refused running or differing, --force restores",
                        check_rebuild_tampered, ctl, journal, nac)
            results.run("rebuild: skips what the log shows quarantined, "
                        "applies it at ops.redrive",
                        check_rebuild_skips_quarantined, ctl, journal, nac)
            results.run("quarantine list, show, redrive (fails again, then applied "
                        "as caused by the redrive); the rebuild agrees",
                        check_quarantine, ctl, journal, nac)
            results.run("trace: causes and effects through nac and activity; "
                        "nac, activity and cpe agree with their rebuilds",
                        check_trace, ctl, journal, [nac, activity, cpe])
            results.run("replay --since/--until and tail --since", check_replay_time,
                        ctl, journal)
            results.run("replay --to ENDPOINT: upstream events to another journal, "
                        "ops.replay logged", check_replay_to, ctl, journal, args.journal)
            tmp = tempfile.mkdtemp(prefix="pb-ops-")
            try:
                results.run("export, import into a fresh journal: the same log; "
                            "export --resume after --to and after a cut tail",
                            check_export_import, ctl, journal, args.journal, tmp)
                results.run("import resumes from the target's head; not a prefix "
                            "or an automatic clock refused",
                            check_import_resume, ctl, journal, args.journal, tmp)
                results.run("import of a corrupted export: the byte offset, nothing "
                            "imported; bad IMPORT requests refused",
                            check_import_corrupt, ctl, journal, args.journal, tmp)
                results.run("progress on a terminal only: export, import, replay, "
                            "rebuild", check_progress, ctl, journal, nac, tmp)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        finally:
            nac.close()
            activity.close()
            cpe.close()
    results.finish()


if __name__ == "__main__":
    main()
