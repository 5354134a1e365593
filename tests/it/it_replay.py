#!/usr/bin/python3
"""it_replay - replay gives back what was ACKed: the same events, in the
same order, without gaps; ranges, prefixes, batches far beyond the replay
batch size, credit flow control, bad requests, and the manual clock."""

import pbtest
from pbtest import envelope

BATCH = 100


def stored_equals_sent(stored, sent):
    """The stored envelope is the sent map plus seq and ts."""
    rest = {k: v for k, v in stored.items() if k not in ("seq", "ts")}
    return rest == sent and isinstance(stored.get("ts"), int)


def main():
    def extra(ap):
        ap.add_argument("--events", type=int, default=20000)
    args = pbtest.parse_args(extra)
    res = pbtest.Results("it_replay")
    with pbtest.Journal(args.journal, {"replay-batch": BATCH},
                        log_name="it-replay") as j:
        j.start()
        p = pbtest.Producer(j, timeout=30)
        sent = {}          # seq -> envelope map as sent

        def status_empty():
            with pbtest.Replayer(j) as r:
                st = r.status()
            assert st == {"head": 0, "now": 0, "clock": "manual"}, st
            with pbtest.Replayer(j) as r:
                events, end, batches = r.replay(1)
            assert events == [] and end["head"] == 0 and end["count"] == 0, \
                end

        def publish_many():
            envs = []
            for i in range(args.events):
                if i % 10 == 3:
                    d = dict(pbtest.VALID_DATA["registry.ally"])
                    envs.append(envelope("registry.ally", "r-%d" % i,
                                         data=d, time=1700000000000 + i))
                else:
                    envs.append(pbtest.sized_feedback("r-%d" % i, src="rp"))
            replies = p.publish_all(envs, window=1000)
            for env, (kind, body) in zip(envs, replies):
                assert kind == "ACK", body
                sent[body["seq"]] = env
            assert sorted(sent) == list(range(1, len(envs) + 1)), \
                "seqs not 1..n"

        def full_replay():
            with pbtest.Replayer(j, timeout=30) as r:
                events, end, batches = r.replay(1)
            pbtest.check_log_gapless(events, end)
            assert end["through"] == end["head"] == len(sent), end
            assert batches >= len(sent) // BATCH, \
                "%d batches for %d events at replay-batch %d" % (
                    batches, len(sent), BATCH)
            for seq, type_, env, _ in events:
                assert stored_equals_sent(env, sent[seq]), \
                    "seq %d differs: %r vs %r" % (seq, env, sent[seq])
                assert type_ == sent[seq]["type"]

        def batch_sizes():
            with pbtest.Replayer(j, timeout=30) as r:
                r.command("REPLAY", {"from": 1, "to": 1000, "credit": 1000})
                sizes = []
                while True:
                    frames = r.recv()
                    if frames[0] == b"END":
                        break
                    assert frames[0] == b"EVENTS", frames[0]
                    sizes.append(len(frames) - 1)
            assert sum(sizes) == 1000, sizes
            assert max(sizes) <= BATCH, "a batch of %d > %d" % (
                max(sizes), BATCH)
            assert min(sizes) >= 1, "an empty EVENTS batch"

        def ranged():
            with pbtest.Replayer(j) as r:
                events, end, _ = r.replay(100, to=250)
                assert [e[0] for e in events] == list(range(100, 251))
                assert end["through"] == 250 and end["count"] == 151, end
                assert end["head"] == len(sent), end
                events, end, _ = r.replay(7, to=7)
                assert [e[0] for e in events] == [7], events
                events, end, _ = r.replay(len(sent) - 5, to=len(sent) + 1000)
                assert [e[0] for e in events] == list(
                    range(len(sent) - 5, len(sent) + 1))
                assert end["through"] >= len(sent), end
                events, end, _ = r.replay(len(sent) + 10)
                assert events == [] and end["count"] == 0, end

        def prefixed():
            with pbtest.Replayer(j, timeout=30) as r:
                events, end, _ = r.replay(1, prefixes=["registry."])
            want = [s for s in sorted(sent)
                    if sent[s]["type"].startswith("registry.")]
            assert [e[0] for e in events] == want, "wrong seqs"
            assert end["through"] == end["head"] == len(sent), end
            assert end["count"] == len(want), end
            with pbtest.Replayer(j) as r:
                events, end, _ = r.replay(1, to=55, prefixes=["registry.",
                                                              "nothing."])
            assert [e[0] for e in events] == [s for s in want if s <= 55]
            assert end["through"] == 55, end
            with pbtest.Replayer(j) as r:
                events, end, _ = r.replay(1, prefixes=["notify."])
            assert events == [] and end["through"] == len(sent), end
            with pbtest.Replayer(j) as r:
                events, end, _ = r.replay(1, to=20, prefixes=[])
            assert len(events) == 20, "empty prefixes list is not 'all'"

        def credit_flow(credit, request_credit):
            with pbtest.Replayer(j, timeout=5) as r:
                req = {"from": 1}
                if request_credit:
                    req["credit"] = credit
                r.command("REPLAY", req)
                got = 0
                while got < credit:          # the batches the credit allows
                    assert r.sock.poll(5000), "only %d of %d batches" % (
                        got, credit)
                    frames = r.recv()
                    assert frames[0] == b"EVENTS", frames[0]
                    got += 1
                assert not r.sock.poll(1000), \
                    "more than %d batches without credit" % credit
                r.command("CREDIT", {"n": 2})
                for _ in range(2):
                    assert r.sock.poll(2000), "no batch after CREDIT"
                    assert r.recv()[0] == b"EVENTS"
                assert not r.sock.poll(500), "a batch beyond the CREDIT"

        def credit_no_more_after_cancel():
            with pbtest.Replayer(j, timeout=5) as r:
                r.command("REPLAY", {"from": 1, "credit": 1})
                assert r.recv()[0] == b"EVENTS"
                r.command("CANCEL")
                r.command("CREDIT", {"n": 100})
                n = 0
                while r.sock.poll(700):
                    if r.recv()[0] == b"EVENTS":
                        n += 1
                assert n == 0, "%d batches after CANCEL" % n

        def replace_replay():
            with pbtest.Replayer(j, timeout=5) as r:
                r.command("REPLAY", {"from": 1, "credit": 1})
                assert r.recv()[0] == b"EVENTS"
                events, end, _ = r.replay(5000, to=5009)
                assert [e[0] for e in events] == list(range(5000, 5010)), \
                    [e[0] for e in events][:5]
                assert end["count"] == 10, end

        def replay_while_writing():
            # an open-ended replay, slowed by its credit, while a producer
            # appends: gapless, in order, and END.through covers the head
            # it reached
            head0 = len(sent)
            with pbtest.Replayer(j, timeout=10) as r, \
                    pbtest.Producer(j) as q:
                r.command("REPLAY", {"from": head0 - 250, "credit": 1})
                seqs, k = [], 0
                while True:
                    frames = r.recv()
                    if frames[0] == b"END":
                        end = pbtest.unpack(frames[1])
                        break
                    assert frames[0] == b"EVENTS", frames[0]
                    seqs += [pbtest.unpack(f)["seq"] for f in frames[1:]]
                    if k < 5:
                        envs = [envelope(id_="w-%d-%d" % (k, i))
                                for i in range(30)]
                        for env, (kind, body) in zip(envs,
                                                     q.publish_all(envs)):
                            assert kind == "ACK", body
                            sent[body["seq"]] = env
                        k += 1
                    r.command("CREDIT", {"n": 1})
            assert seqs == list(range(head0 - 250, seqs[-1] + 1)), \
                "replay during writes is not gapless"
            assert end["through"] == seqs[-1] and end["count"] == len(seqs), \
                (end, seqs[-1], len(seqs))
            assert seqs[-1] > head0, "the replay stopped at the old head"
            assert end["head"] >= seqs[-1], end

        def idle_replay_dropped():
            with pbtest.Journal(args.journal, {"replay-idle": 300,
                                               "replay-batch": 10},
                                log_name="it-replay-idle") as k:
                k.start()
                with pbtest.Producer(k) as q:
                    envs = [envelope(id_="i-%d" % i) for i in range(50)]
                    assert all(r[0] == "ACK" for r in q.publish_all(envs))
                with pbtest.Replayer(k, timeout=5) as r:
                    r.command("REPLAY", {"from": 1, "credit": 1})
                    assert r.recv()[0] == b"EVENTS"
                    assert not r.sock.poll(1200), "a batch without credit"
                    r.command("CREDIT", {"n": 5})
                    n = 0
                    while r.sock.poll(700):
                        frames = r.recv()
                        n += frames[0] == b"EVENTS"
                    assert n == 0, "%d batches after replay_idle" % n
                    events, end, _ = r.replay(1)
                    assert len(events) == 50 and end["count"] == 50, end

        def bad_requests():
            bad = [
                ("REPLAY", {"from": 0}, "from"),
                ("REPLAY", {}, "from"),
                ("REPLAY", {"from": -3}, "from"),
                ("REPLAY", {"from": "1"}, "from"),
                ("REPLAY", {"from": 10, "to": 9}, "to"),
                ("REPLAY", {"from": 1, "credit": 0}, "credit"),
                ("REPLAY", {"from": 1, "credit": 1001}, "credit"),
                ("REPLAY", {"from": 1, "prefixes": "registry."}, "prefixes"),
                ("REPLAY", {"from": 1, "prefixes": [1]}, "prefixes"),
                ("REPLAY", {"from": 1, "colour": 1}, "colour"),
                ("REPLAY", b"\xc1\xc1", None),
                ("REPLAY", [1], None),
                ("REPLAY", None, None),
                ("TICK", {}, "now"),
                ("TICK", {"now": "soon"}, "now"),
                ("TICK", None, None),
                ("STATUS", {"x": 1}, None),
                ("FROBNICATE", None, "FROBNICATE"),
            ]
            for name, body, field in bad:
                with pbtest.Replayer(j, timeout=5) as r:
                    if isinstance(body, list):
                        kind, reply = r.request(name, pbtest.pack(body))
                    else:
                        kind, reply = r.request(name, body)
                assert kind == "ERROR", "%s %r answered %s %r" % (
                    name, body, kind, reply)
                assert reply.get("code") == "bad_request", (name, body, reply)
                if field:
                    assert field in reply.get("error", ""), \
                        "%s %r: error %r does not name %s" % (
                            name, body, reply.get("error"), field)
            with pbtest.Replayer(j) as r:     # still served afterwards
                assert r.status()["head"] == len(sent)

        def manual_clock():
            with pbtest.Replayer(j) as r:
                kind, body = r.tick(1000)
                assert kind == "TICKED", (kind, body)
                assert body["now"] == 1000 and body["seq"] == len(sent) + 1, \
                    body
                seq = body["seq"]
                kind, body = r.tick(999)
                assert (kind, body.get("code")) == ("ERROR", "backwards"), \
                    (kind, body)
                # the same now again is not backwards: the journal may
                # append a second tick or answer with the first one's seq
                # (pb-journal does the latter: a tick's id is its now)
                kind, body = r.tick(1000)
                assert kind == "TICKED" and body["now"] == 1000 and \
                    body["seq"] in (seq, seq + 1), \
                    "TICK at the same now: %s %r" % (kind, body)
                nows = [1000] * (body["seq"] - seq + 1) + [86400000]
                kind, body = r.tick(86400000)
                assert kind == "TICKED" and body["seq"] == seq + len(nows) - 1, \
                    body
                head = body["seq"]
                st = r.status()
                assert st["now"] == 86400000 and st["head"] == head, st
                events, end, _ = r.replay(seq, prefixes=["sys."])
            assert [e[0] for e in events] == list(range(seq, head + 1)), \
                events
            for e, now in zip(events, nows):
                assert e[1] == "sys.tick", e
                assert e[2]["data"] == {"now": now}, e[2]
                assert e[2]["src"] == "journal", e[2]
            # the log time survives a restart
            j.kill9()
            j.start()
            with pbtest.Replayer(j) as r:
                st = r.status()
                assert st["now"] == 86400000 and st["head"] == head, st
                kind, body = r.tick(5)
                assert (kind, body.get("code")) == ("ERROR", "backwards")

        def auto_clock():
            with pbtest.Journal(args.journal, {"clock": "auto"},
                                log_name="it-replay-auto") as a:
                a.start()
                with pbtest.Replayer(a) as r:
                    kind, body = r.tick(10 ** 13)
                    assert (kind, body.get("code")) == ("ERROR",
                                                        "not_manual"), body
                    assert r.status()["clock"] == "auto"

        res.run("STATUS and replay of an empty log", status_empty)
        res.run("publish %d events" % args.events, publish_many)
        res.run("full replay = ACKed, gapless, batches of %d" % BATCH,
                full_replay)
        res.run("no batch over replay-batch", batch_sizes)
        res.run("ranged replay (from/to)", ranged)
        res.run("prefix-filtered replay, END.through", prefixed)
        res.run("no credit granted: at most 'credit' (3) batches",
                credit_flow, 3, True)
        res.run("default credit is 4 batches", credit_flow, 4, False)
        res.run("CANCEL stops a replay", credit_no_more_after_cancel)
        res.run("a new REPLAY replaces the one in progress", replace_replay)
        res.run("replay while a producer appends: gapless, END.through",
                replay_while_writing)
        res.run("a replay idle past replay_idle is dropped",
                idle_replay_dropped)
        res.run("bad requests -> ERROR bad_request naming the field",
                bad_requests)
        res.run("manual clock: TICK, backwards refused, survives restart",
                manual_clock)
        res.run("TICK on an auto clock -> not_manual", auto_clock)
        p.close()
        if res.failed:
            print(j.log_tail())
    res.finish()


if __name__ == "__main__":
    main()
