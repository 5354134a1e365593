#!/usr/bin/python3
"""it_metrics - /metrics and /health of the real processes

pb-journal, pb-nac and pb-cpe run with their 'metrics' endpoint on free
ports; the test scrapes them over HTTP (urllib) and checks that the values
are the truth, as the harness's own client sees it (pbtest.Producer,
Replayer), and that they move:

  journal     /health ready once bound; after N events published,
              ingest_messages = appended = N (and stay so); resends count as
              duplicates; one bad message of each of three kinds counts once
              under its NAK code, every other code 0; batch sizes sum to the
              messages; commits are timed; head; a full replay counts N
  http        text format 0.0.4; 404 elsewhere, 405 for POST
  config      a malformed metrics endpoint, a taken port: the service
              refuses to start, and says why
  worker      pb-nac started while the journal is down: /health 503
              "catching up"; once the journal is back: ready, applied_seq =
              head, lag 0
  business    proposals under silence procedure (nac); handovers waiting for
              a decision and partners without a CPE (cpe), before and after
              the decision; partners without a CPE = the vacancies the log
              announced, less the partners that became Allies
  status      pbctl status --json: quarantine count, store and map sizes
              (= the files and the /metrics), lag in events and seconds of a
              stopped worker, rates while events flow, --watch rounds

Run: /usr/bin/python3 tests/it/it_metrics.py --bin-dir BUILD
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pbtest  # noqa: E402
import system  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REGISTRY = os.path.join(HERE, "..", "..", "deploy", "registry.jsonl")


def http(port, path, method="GET"):
    """(status, headers, body text) of one request to 127.0.0.1:port"""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method,
                                 data=b"x" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read().decode()


def scrape(port):
    """{name or name{labels}: value} of one /metrics"""
    status, _, body = http(port, "/metrics")
    assert status == 200, (status, body)
    values = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            values[key] = float(value)
    return values


def wait_value(port, key, want, timeout=10.0):
    """Until /metrics has key = want (a snapshot is at most 1 s old)"""
    deadline = time.time() + timeout
    got = None
    while time.time() < deadline:
        try:
            got = scrape(port).get(key)
        except (AssertionError, OSError):
            got = None
        if got == want:
            return
        time.sleep(0.1)
    raise AssertionError("%s = %r, want %r" % (key, got, want))


def wait_at_least(port, key, want, timeout=20.0):
    """Until /metrics has key >= want (the log may have grown meanwhile:
    the workers' own notifications)"""
    deadline = time.time() + timeout
    got = None
    while time.time() < deadline:
        try:
            got = scrape(port).get(key)
        except (AssertionError, OSError):
            got = None
        if got is not None and got >= want:
            return
        time.sleep(0.1)
    raise AssertionError("%s = %r, want at least %r" % (key, got, want))


def wait_health(port, status_want, text_want, timeout=20.0):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = http(port, "/health")
            if last[0] == status_want and text_want in last[2]:
                return last
        except OSError as err:
            last = err
        time.sleep(0.1)
    raise AssertionError("/health: %r, want %d %r" % (last, status_want, text_want))


def feedback(i):
    return pbtest.envelope(id_="m-%d" % i,
                           data=pbtest.feedback_data(activity="ACT-%d" % i))


def check_journal(j, port, state):
    wait_health(port, 200, "ready", timeout=5)
    n = 250
    with pbtest.Producer(j) as p:
        replies = p.publish_all([feedback(i) for i in range(n)])
        assert all(k == "ACK" for k, _ in replies), replies[:3]
        wait_value(port, "pb_journal_ingest_messages_total", n)
        values = scrape(port)
        assert values["pb_journal_events_appended_total"] == n, values
        time.sleep(1.2)                 # a later snapshot counts nothing twice
        values = scrape(port)
        assert values["pb_journal_ingest_messages_total"] == n, values
        assert values["pb_journal_head_seq"] == n, values
        replies = p.publish_all([feedback(i) for i in range(10)])
        assert all(k == "ACK" for k, _ in replies)
        wait_value(port, "pb_journal_duplicates_total", 10)
        #  Three refusals, each under its own code
        p.send_frames([b"activity.feedback", b"\xc1"])
        p.send(pbtest.envelope(type_="no.such.type", id_="bad-2", data={}))
        p.send_frames([b"activity.feedback", pbtest.pack(feedback(999)), b"extra"])
        codes = [p.recv()[1]["code"] for _ in range(3)]
        assert codes == ["bad_msgpack", "unknown_type", "bad_frames"], codes
    wait_value(port, 'pb_journal_naks_total{code="bad_frames"}', 1)
    values = scrape(port)
    for key, value in values.items():
        if key.startswith("pb_journal_naks_total"):
            want = 1 if any(c in key for c in ("bad_msgpack", "unknown_type",
                                               "bad_frames")) else 0
            assert value == want, (key, value)
    total = n + 10 + 3
    assert values["pb_journal_ingest_messages_total"] == total, values
    assert values["pb_journal_events_appended_total"] == n, values
    #  Manual clock: no ticks, so every batch entry came from ingest
    assert values["pb_journal_batch_size_sum"] == total, values
    assert values["pb_journal_batch_size_count"] == values["pb_journal_batches_total"]
    assert 1 <= values["pb_journal_commit_seconds_count"] <= values["pb_journal_batches_total"]
    assert values['pb_journal_commit_seconds_bucket{le="+Inf"}'] == \
        values["pb_journal_commit_seconds_count"]
    assert values["pb_journal_store_bytes"] > 0 and values["pb_journal_map_bytes"] > 0
    assert 0 < values["pb_journal_map_use_ratio"] < 1
    #  The data file is written ahead of the pages in use (journal/prealloc,
    #  8 MiB, a MiB per small commit), never past the map
    ahead = values["pb_journal_store_bytes"] - values["pb_journal_map_used_bytes"]
    assert 512 * 1024 <= ahead <= 8 << 20, values
    assert values["pb_journal_store_bytes"] <= values["pb_journal_map_bytes"], values
    assert abs(values["pb_journal_map_use_ratio"] - values["pb_journal_map_used_bytes"]
               / values["pb_journal_map_bytes"]) < 1e-6, values
    with pbtest.Replayer(j) as r:
        events, _, _ = r.replay(1)
    assert len(events) == n
    wait_value(port, "pb_journal_replay_events_total", n)
    state["head"] = n


def check_http(port):
    status, headers, body = http(port, "/metrics")
    assert status == 200 and "version=0.0.4" in headers.get("Content-Type", ""), headers
    assert "# TYPE pb_journal_commit_seconds histogram" in body
    assert http(port, "/nope")[0] == 404
    status, headers, _ = http(port, "/metrics", method="POST")
    assert status == 405 and "GET" in headers.get("Allow", ""), (status, headers)


def check_config(journal_bin, nac_bin, tmp):
    proc = subprocess.run([journal_bin, "--data-dir", os.path.join(tmp, "bad"),
                           "--metrics", "localhost:x"], capture_output=True, timeout=30)
    assert proc.returncode != 0 and b"not HOST:PORT" in proc.stderr + proc.stdout, proc
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        for binary in (journal_bin, nac_bin):
            ports = [pbtest.free_port() for _ in range(3)]
            proc = subprocess.run(
                [binary, "--data-dir", os.path.join(tmp, "taken-" + os.path.basename(binary)),
                 "--ingest", "tcp://127.0.0.1:%d" % ports[0],
                 "--fanout", "tcp://127.0.0.1:%d" % ports[1],
                 "--replay", "tcp://127.0.0.1:%d" % ports[2],
                 "--metrics", "127.0.0.1:%d" % port], capture_output=True, timeout=30)
            out = proc.stderr + proc.stdout
            assert proc.returncode != 0 and b"cannot listen" in out, (binary, out[-600:])
    finally:
        taken.close()


def check_worker_ready(j, nac, port, state):
    assert j.term() == 0
    nac.start()
    wait_health(port, 503, "catching up")
    j.start()
    wait_health(port, 200, "ready")
    wait_value(port, 'pb_worker_applied_seq{worker="nac"}', state["head"])
    values = scrape(port)
    assert values['pb_worker_lag_events{worker="nac"}'] == 0, values
    assert values['pb_worker_lag_seconds{worker="nac"}'] == 0, values
    assert values['pb_worker_head_seq{worker="nac"}'] == state["head"], values
    assert values['pb_worker_quarantined{worker="nac"}'] == 0, values
    assert values['pb_worker_store_bytes{worker="nac"}'] > 0, values


def publish(p, env):
    kind, body = p.publish(env)
    assert kind == "ACK", (env, body)
    return body["seq"]


def head(j):
    with pbtest.Replayer(j) as r:
        return r.status()["head"]


def check_business(j, nac_port, cpe_port, ctl):
    proc = subprocess.run([ctl, "publish", "--ingest", j.ingest, REGISTRY],
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stdout[-500:]
    with pbtest.Replayer(j) as r:
        kind, body = r.tick(1767225600000 + 86400000 * 150)    # 2026-05-31
        assert kind == "TICKED", body
    with pbtest.Producer(j) as p:
        publish(p, pbtest.envelope("nac.proposal", "b-1", data={
            "proposal": "b-sil", "procedure": "silence", "deadline": 1893456000000,
            "action": {"kind": "cpe.assign", "partner": "ARM", "ally": "FRA"}}))
        publish(p, pbtest.envelope("nac.proposal", "b-2", data={
            "proposal": "b-geo", "procedure": "meeting",
            "action": {"kind": "cpe.assign", "partner": "GEO", "ally": "NOR"}}))
        publish(p, pbtest.envelope("cpe.handover", "b-3", data={
            "partner": "GEO", "to": "NOR", "decision": "b-geo",
            "effective": "2026-01-01"}))
        h = head(j)
        wait_at_least(nac_port, 'pb_worker_applied_seq{worker="nac"}', h)
        wait_at_least(cpe_port, 'pb_worker_applied_seq{worker="cpe"}', h)
        wait_value(nac_port, 'pb_nac_proposals_silence{worker="nac"}', 1)
        wait_value(cpe_port, 'pb_cpe_handovers_waiting{worker="cpe"}', 1)
        with pbtest.Replayer(j) as r:
            events, _, _ = r.replay(1, prefixes=["notify.cpe.vacant"])
            adopted, _, _ = r.replay(1, prefixes=["notify.nac.adopted"])
        #  Announced vacant, and not an Ally since (the accessions of
        #  Finland and Sweden, adopted by the Council)
        acceded = {e[2]["data"]["action"]["country"] for e in adopted
                   if e[2]["data"]["action"]["kind"] == "accession"}
        vacant = {e[2]["data"]["partner"] for e in events} - acceded
        assert acceded == {"FIN", "SWE"}, acceded
        assert vacant and "GEO" in vacant, vacant
        without = scrape(cpe_port)['pb_cpe_partners_without_cpe{worker="cpe"}']
        assert without == len(vacant), (without, sorted(vacant))
        #  The Council decides: the handover completes, GEO has a CPE
        publish(p, pbtest.envelope("nac.meeting", "b-4", data={
            "proposal": "b-geo", "outcome": "agreed"}))
        wait_value(cpe_port, 'pb_cpe_handovers_waiting{worker="cpe"}', 0, timeout=20)
        wait_value(cpe_port, 'pb_cpe_partners_without_cpe{worker="cpe"}', without - 1)
        #  An objection breaks silence
        publish(p, pbtest.envelope("nac.position", "b-5", data={
            "proposal": "b-sil", "ally": "HUN", "position": "object"}))
        wait_value(nac_port, 'pb_nac_proposals_silence{worker="nac"}', 0, timeout=20)


def status(ctl, j, workers, *extra):
    args = [ctl, "status", "--json", "--replay", j.replay,
            "--journal-dir", os.path.join(j.data_dir, "log")] + list(extra)
    for w in workers:
        args += ["--worker", "%s=%s" % (w.name, w.store_dir)]
    proc = subprocess.run(args, capture_output=True, timeout=60)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-500:])
    return [json.loads(line) for line in proc.stdout.decode().splitlines()]


def check_status(j, nac, cpe, ports, ctl):
    """pbctl status: lag in seconds, rates, quarantine, store sizes, as
    the stores and the workers' own /metrics say"""
    with pbtest.Producer(j) as p:
        #  A quarantine: 65 objectors are more than notify.nac.blocked holds
        allies = ["Q%s%s" % (a, b) for a in "ABC" for b in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"][:65]
        assert all(k == "ACK" for k, _ in p.publish_all([pbtest.envelope(
            "registry.ally", "q-ally-" + a, src="registry",
            data={"country": a, "name": a, "joined": "2030-01-01"}) for a in allies]))
        publish(p, pbtest.envelope("nac.proposal", "q-p", data={
            "proposal": "q-big", "procedure": "meeting",
            "action": {"kind": "cpe.assign", "partner": "UKR", "ally": "FRA"}}))
        assert all(k == "ACK" for k, _ in p.publish_all([pbtest.envelope(
            "nac.position", "q-obj-" + a, data={"proposal": "q-big", "ally": a,
                                                 "position": "object"}) for a in allies]))
        publish(p, pbtest.envelope("nac.meeting", "q-m", data={
            "proposal": "q-big", "outcome": "not_agreed"}))
    wait_value(ports["nac"], 'pb_worker_quarantined{worker="nac"}', 1, timeout=20)
    time.sleep(0.5)                     # nac's notice is logged by now
    h = head(j)
    wait_at_least(ports["nac"], 'pb_worker_applied_seq{worker="nac"}', h)
    wait_at_least(ports["cpe"], 'pb_worker_applied_seq{worker="cpe"}', h)
    [report] = status(ctl, j, [nac, cpe], "--rate-ms", "0")
    assert report["head"] >= h and report["rate"] is None, report
    by = {w["name"]: w for w in report["workers"]}
    assert by["nac"]["quarantined"] == 1 and by["cpe"]["quarantined"] == 0, by
    for w in (nac, cpe):
        item = by[w.name]
        assert item["lag"] == 0 and item["lag_seconds"] == 0 and item["rate"] is None, item
        assert item["store_bytes"] == os.path.getsize(os.path.join(w.store_dir, "data.mdb"))
        values = scrape(ports[w.name])
        key = '{worker="%s"}' % w.name
        assert item["map_bytes"] == values["pb_worker_map_bytes" + key], (item, values)
        assert 0 < item["map_used_bytes"] <= item["store_bytes"], item
        #  Written ahead after its small live batches (<worker>/prealloc 4 MiB)
        assert 512 * 1024 <= item["store_bytes"] - item["map_used_bytes"] <= 4 << 20, item
        assert 0 < item["map_use"] < 1, item
    log = os.path.join(j.data_dir, "log", "data.mdb")
    assert report["journal"]["store_bytes"] == os.path.getsize(log), report["journal"]
    assert report["journal"]["map_bytes"] == scrape(ports["journal"])["pb_journal_map_bytes"]
    #  Lag in seconds: the cpe worker stopped while the log moves on a minute
    assert cpe.term() == 0
    before = report["now"]
    with pbtest.Replayer(j) as r:
        kind, body = r.tick(before + 60000)
        assert kind == "TICKED", body
    with pbtest.Producer(j) as p:
        publish(p, feedback(5000))
    [report] = status(ctl, j, [nac, cpe], "--rate-ms", "0")
    by = {w["name"]: w for w in report["workers"]}
    assert by["cpe"]["lag"] == report["head"] - by["cpe"]["applied_seq"] >= 2, by["cpe"]
    assert by["cpe"]["lag_seconds"] == 60.0, by["cpe"]
    cpe.start()
    #  Rates: events published during the sample interval
    stop = []

    def feed():
        with pbtest.Producer(j) as p:
            i = 6000
            while not stop:
                publish(p, feedback(i))
                i += 1
                time.sleep(0.005)
    t = threading.Thread(target=feed)
    t.start()
    try:
        time.sleep(0.3)
        [report] = status(ctl, j, [nac, cpe], "--rate-ms", "1500")
    finally:
        stop.append(1)
        t.join()
    assert report["rate"] > 0, report
    nac_rate = [w["rate"] for w in report["workers"] if w["name"] == "nac"][0]
    assert nac_rate is not None and nac_rate > 0, report["workers"]
    #  --watch: one report a round, until interrupted; text for people
    args = [ctl, "status", "--watch", "1", "--rate-ms", "0", "--replay", j.replay,
            "--worker", "nac=" + nac.store_dir]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(2.5)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=20)
    text = out.decode()
    assert text.count("journal  head") >= 2, text
    assert "quarantined 1" in text and "map " in text and "rate " in text, text


def main():
    args = pbtest.parse_args()
    bins = system.worker_binaries(args.bin_dir)
    ctl = os.path.join(args.bin_dir, "services", "ctl", "pbctl")
    results = pbtest.Results("it_metrics")
    tmp = pbtest.tempfile.mkdtemp(prefix="pb-it-metrics-")
    ports = {name: pbtest.free_port() for name in ("journal", "nac", "cpe")}
    j = pbtest.Journal(args.journal, options={
        "metrics": "127.0.0.1:%d" % ports["journal"]}, log_name="pb-journal-metrics")
    state = {}
    workers = []
    try:
        j.start()
        if results.run("journal: counters are the truth and move", check_journal,
                       j, ports["journal"], state):
            results.run("http: format, 404, 405", check_http, ports["journal"])
        results.run("config: bad endpoint, taken port", check_config,
                    args.journal, bins["nac"], tmp)
        nac = system.Worker("nac", bins["nac"], j, options={
            "metrics": "127.0.0.1:%d" % ports["nac"]})
        cpe = system.Worker("cpe", bins["cpe"], j, options={
            "metrics": "127.0.0.1:%d" % ports["cpe"]})
        workers = [nac, cpe]
        if "head" in state and results.run(
                "worker: not ready while catching up, ready after",
                check_worker_ready, j, nac, ports["nac"], state):
            cpe.start()
            if results.run("business gauges: silence, waiting, without a CPE",
                           check_business, j, ports["nac"], ports["cpe"], ctl):
                results.run("pbctl status: lag seconds, rates, quarantine, stores",
                            check_status, j, nac, cpe, ports, ctl)
    finally:
        for w in workers:
            if w.alive():
                w.term()
            try:                        # a worker's sanitizer report fails the run
                with open(w.log_path, "rb") as f:
                    text = f.read().decode("utf-8", "replace")
            except OSError:
                text = ""
            for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                           "runtime error:"):
                if marker in text:
                    pbtest.SANITIZER_REPORTS.append(text[text.find(marker):][:3000])
                    print("SANITIZER REPORT in pb-%s:\n%s" % (w.name, pbtest.SANITIZER_REPORTS[-1]))
            w.close()
        j.close()
        subprocess.run(["rm", "-rf", tmp])
    results.finish()


if __name__ == "__main__":
    main()
