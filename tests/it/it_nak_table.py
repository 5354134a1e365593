#!/usr/bin/python3
"""it_nak_table - every row of PROTOCOL.md's NAK table, by sending the bad
input that triggers it, then proof that nothing bad entered the log.

Each case checks the exact `code`, that `error` names the field at fault,
and, where the envelope was readable, that the NAK carries its `id`."""

import struct

import msgpack

import pbtest
from pbtest import envelope, pack

FEEDBACK = b"activity.feedback"


# ---------------------------------------------------------------------------
# Hand-made MessagePack, for what msgpack.packb refuses to produce


def raw_map(pairs):
    """A map from (key bytes, value bytes) pairs, keys possibly repeated."""
    n = len(pairs)
    head = bytes([0x80 | n]) if n < 16 else b"\xde" + struct.pack(">H", n)
    return head + b"".join(k + v for k, v in pairs)


def raw_env(id_="x", src="it", type_="activity.feedback", data=None,
            extra=()):
    """Pairs of a valid envelope, as packed bytes, plus 'extra' pairs."""
    data = pbtest.feedback_data() if data is None else data
    pairs = [(pack("id"), pack(id_)), (pack("src"), pack(src)),
             (pack("type"), pack(type_)),
             (pack("data"), data if isinstance(data, bytes) else pack(data))]
    return pairs + list(extra)


def bad_utf8_str():
    return b"\xa3\xff\xfe\xfd"           # fixstr of 3 bytes, not UTF-8


# ---------------------------------------------------------------------------
# The cases: (label, type frame, envelope bytes or map, code, field, id)
# field: a word the error sentence must contain (None: not checked);
# id: the id the NAK must carry (None: not checked).


def cases():
    c = []

    def add(label, env, code, field, nak_id=None, type_=FEEDBACK,
            frames=None):
        c.append((label, frames, type_, env, code, field, nak_id))

    # bad_frames
    add("one frame", None, "bad_frames", None, frames=[FEEDBACK])
    add("three frames", None, "bad_frames", None,
        frames=[FEEDBACK, pack(envelope(id_="f3")), b"extra"])
    # too_large: refused before any decoding, whatever the bytes are
    big = envelope(id_="big", data=pbtest.feedback_data(comment="y" * 70000))
    add("70 KB envelope", pack(big), "too_large", None)
    add("70 KB of garbage", b"\xc1" * 70000, "too_large", None)
    # bad_msgpack
    add("garbage bytes", b"\xc1\x00garbage", "bad_msgpack", None)
    good = pack(envelope(id_="trunc"))
    add("truncated", good[:-3], "bad_msgpack", None)
    add("trailing bytes", good + b"\xc0", "bad_msgpack", None)
    add("empty envelope frame", b"", "bad_msgpack", None)
    add("2^32 array header on a short message",
        b"\xdd\xff\xff\xff\xff\x01\x02\x03", "bad_msgpack", None)
    add("2^32 map header inside data",
        raw_map(raw_env("huge", data=b"\xdf\xff\xff\xff\xff\xa1a\x01")),
        "bad_msgpack", None)
    add("str length beyond the bytes present",
        raw_map(raw_env("strlen", data=b"\x81\xa7comment\xdb\x00\x10\x00\x00ab")),
        "bad_msgpack", None)
    add("5000-deep nesting",
        raw_map(raw_env("deep", data=b"\x91" * 5000 + b"\xc0")),
        "bad_msgpack", None)
    add("duplicate envelope key",
        raw_map(raw_env("dup") + [(pack("id"), pack("dup2"))]),
        "bad_msgpack", None)
    dup_data = raw_map([(pack("activity"), pack("A")),
                        (pack("from"), pack("ITA")),
                        (pack("relevance"), pack(3)),
                        (pack("relevance"), pack(4)),
                        (pack("effectiveness"), pack(4))])
    add("duplicate data key", raw_map(raw_env("dupd", data=dup_data)),
        "bad_msgpack", None)
    add("invalid UTF-8 in id",
        raw_map([(pack("id"), bad_utf8_str())] + raw_env()[1:]),
        "bad_msgpack", None)
    add("invalid UTF-8 in a data string",
        raw_map(raw_env("utf", data=raw_map(
            [(pack("activity"), pack("A")), (pack("from"), pack("ITA")),
             (pack("relevance"), pack(3)), (pack("effectiveness"), pack(4)),
             (pack("comment"), bad_utf8_str())]))),
        "bad_msgpack", None)
    add("invalid UTF-8 in a key",
        raw_map(raw_env("utfk") + [(bad_utf8_str(), pack(1))]),
        "bad_msgpack", None)
    add("ext type",
        pack(envelope(id_="ext", time=msgpack.ExtType(5, b"abcd"))),
        "bad_msgpack", None)
    add("timestamp ext (-1)",
        raw_map(raw_env("ts-ext", extra=[(pack("time"),
                                          b"\xd6\xff\x00\x00\x00\x01")])),
        "bad_msgpack", None)
    # bad_envelope
    add("top level is an array", pack(["id", "x"]), "bad_envelope", None)
    add("top level is a string", pack("hello"), "bad_envelope", None)
    for key in ("id", "src", "type", "data"):
        env = envelope(id_="miss-" + key)
        del env[key]
        add("missing " + key, pack(env), "bad_envelope", key,
            None if key == "id" else "miss-" + key)
    add("unknown envelope key", pack(envelope(id_="unk", colour="red")),
        "bad_envelope", "colour", "unk")
    add("id is an int", pack(envelope(id_=42)), "bad_envelope", "id")
    add("id is empty", pack(envelope(id_="")), "bad_envelope", "id")
    add("id over 128 bytes", pack(envelope(id_="i" * 129)),
        "bad_envelope", "id")
    add("src over 64 bytes", pack(envelope(id_="srclen", src="s" * 65)),
        "bad_envelope", "src", "srclen")
    add("src is empty", pack(envelope(id_="srcempty", src="")),
        "bad_envelope", "src", "srcempty")
    add("src is binary", raw_map([(pack("id"), pack("srcbin")),
                                  (pack("src"), pack(b"it"))]
                                 + raw_env()[2:]),
        "bad_envelope", "src", "srcbin")
    add("type is an int",
        raw_map(raw_env("typeint")[:2] + [(pack("type"), pack(7))]
                + raw_env()[3:]),
        "bad_envelope", "type", "typeint")
    add("data is a list", pack(envelope(id_="datalist", data=[1, 2])),
        "bad_envelope", "data", "datalist")
    add("time is a string", pack(envelope(id_="timestr", time="now")),
        "bad_envelope", "time", "timestr")
    add("seq from a producer", pack(envelope(id_="seq", seq=1)),
        "bad_envelope", "seq", "seq")
    add("ts from a producer", pack(envelope(id_="ts", ts=1)),
        "bad_envelope", "ts", "ts")
    add("cause on an upstream type", pack(envelope(id_="cause", cause=1)),
        "bad_envelope", "cause", "cause")
    add("cause missing on a notify type",
        pack(envelope("activity.feedback", "nocause", "nac",
                      {"proposal": "P-1", "reason": "invalid_action"},
                      type="notify.nac.rejected")),
        "bad_envelope", "cause", "nocause", b"notify.nac.rejected")
    add("cause negative on a notify type",
        pack(envelope("activity.feedback", "negcause", "nac",
                      {"proposal": "P-1", "reason": "invalid_action"},
                      type="notify.nac.rejected", cause=-1)),
        "bad_envelope", "cause", "negcause", b"notify.nac.rejected")
    # type_mismatch, unknown_type
    add("type frame differs from type", pack(envelope(id_="mm")),
        "type_mismatch", "type", "mm", b"registry.ally")
    add("unknown type",
        pack(envelope(id_="unkt", type="activity.nothing")),
        "unknown_type", "type", "unkt", b"activity.nothing")
    # unauthorized
    add("sys.tick from a producer",
        pack(envelope("activity.feedback", "tick", "it", {"now": 5},
                      type="sys.tick")),
        "unauthorized", "sys.tick", "tick", b"sys.tick")
    add("sys.tick with src journal",
        pack(envelope("activity.feedback", "tick2", "journal", {"now": 5},
                      type="sys.tick")),
        "unauthorized", "sys.tick", "tick2", b"sys.tick")
    add("notify.nac.* with src cpe",
        pack(envelope("activity.feedback", "nacfake", "cpe",
                      {"proposal": "P-1", "reason": "invalid_action"},
                      type="notify.nac.rejected", cause=1)),
        "unauthorized", None, "nacfake", b"notify.nac.rejected")
    add("ops.redrive from a producer",
        pack(envelope("activity.feedback", "redrive", "it",
                      {"worker": "nac", "seq": 1}, type="ops.redrive")),
        "unauthorized", None, "redrive", b"ops.redrive")
    # bad_data
    d = pbtest.feedback_data()
    del d["relevance"]
    add("missing required field", pack(envelope(id_="bd1", data=d)),
        "bad_data", "relevance", "bd1")
    add("unknown data field",
        pack(envelope(id_="bd2", data=dict(pbtest.feedback_data(),
                                           colour="red"))),
        "bad_data", "colour", "bd2")
    add("range violation",
        pack(envelope(id_="bd3", data=pbtest.feedback_data(relevance=7))),
        "bad_data", "relevance", "bd3")
    add("ill-typed field",
        pack(envelope(id_="bd4", data=pbtest.feedback_data(relevance="3"))),
        "bad_data", "relevance", "bd4")
    add("text over 4 KiB",
        pack(envelope(id_="bd5",
                      data=pbtest.feedback_data(comment="c" * 4097))),
        "bad_data", "comment", "bd5")
    reg = dict(pbtest.VALID_DATA["activity.registered"], area="space")
    add("enum violation", pack(envelope("activity.registered", "bd6",
                                        data=reg)),
        "bad_data", "area", "bd6", b"activity.registered")
    reg = dict(pbtest.VALID_DATA["activity.registered"],
               partners=[chr(65 + i // 26) + chr(65 + i % 26) + "Z"
                         for i in range(65)])
    add("list over 64 items", pack(envelope("activity.registered", "bd7",
                                            data=reg)),
        "bad_data", "partners", "bd7", b"activity.registered")
    ally = dict(pbtest.VALID_DATA["registry.ally"], country="Ita")
    add("bad country code", pack(envelope("registry.ally", "bd8",
                                          data=ally)),
        "bad_data", "country", "bd8", b"registry.ally")
    ally = dict(pbtest.VALID_DATA["registry.ally"], joined="2023-02-30")
    add("impossible date", pack(envelope("registry.ally", "bd9",
                                         data=ally)),
        "bad_data", "joined", "bd9", b"registry.ally")
    prop = dict(pbtest.VALID_DATA["nac.proposal"], procedure="silence")
    add("silence without deadline", pack(envelope("nac.proposal", "bd10",
                                                  data=prop)),
        "bad_data", "deadline", "bd10", b"nac.proposal")
    prop = dict(pbtest.VALID_DATA["nac.proposal"], deadline=1000)
    add("deadline without silence", pack(envelope("nac.proposal", "bd11",
                                                  data=prop)),
        "bad_data", "deadline", "bd11", b"nac.proposal")
    prop = dict(pbtest.VALID_DATA["nac.proposal"],
                action={"kind": "cpe.assign", "partner": "JPN"})
    add("action missing a field of its kind",
        pack(envelope("nac.proposal", "bd12", data=prop)),
        "bad_data", "ally", "bd12", b"nac.proposal")
    prop = dict(pbtest.VALID_DATA["nac.proposal"],
                action={"kind": "accession", "country": "JPN",
                        "effective": "2025-01-01", "ally": "ITA"})
    add("action with a field of another kind",
        pack(envelope("nac.proposal", "bd13", data=prop)),
        "bad_data", "ally", "bd13", b"nac.proposal")
    prop = dict(pbtest.VALID_DATA["nac.proposal"],
                action={"kind": "war.declare"})
    add("action of unknown kind",
        pack(envelope("nac.proposal", "bd14", data=prop)),
        "bad_data", "kind", "bd14", b"nac.proposal")
    part = dict(pbtest.VALID_DATA["registry.partner"], frameworks=["NATO"])
    add("list item outside the enum",
        pack(envelope("registry.partner", "bd15", data=part)),
        "bad_data", "frameworks", "bd15", b"registry.partner")
    pol = {"weights": {k: 0 for k in (
        "aspires_membership", "shares_values", "supports_operations",
        "strategic_importance", "bilateral_framework",
        "finances_activities", "priority_area")}}
    add("weights all zero",
        pack(envelope("registry.policy", "bd16", data=pol)),
        "bad_data", "weights", "bd16", b"registry.policy")
    return c


def main():
    args = pbtest.parse_args()
    res = pbtest.Results("it_nak_table")
    with pbtest.Journal(args.journal, log_name="it-nak") as j:
        j.start()
        p = pbtest.Producer(j)
        acked = {}

        def publish_good(id_, type_="activity.feedback", **kw):
            env = envelope(type_, id_, **kw)
            kind, body = p.publish(env)
            assert kind == "ACK", "good %s got %s %r" % (id_, kind, body)
            acked[(env["src"], id_)] = body["seq"]
            return body["seq"]

        res.run("good input is ACKed first", publish_good, "good-0")
        missing_id = []

        for label, frames, type_, env, code, field, nak_id in cases():
            def one(frames=frames, type_=type_, env=env, code=code,
                    field=field, nak_id=nak_id):
                if frames is not None:
                    p.send_frames(frames)
                else:
                    p.send(env, type_)
                kind, body = p.recv()
                assert kind == "NAK", "expected NAK %s, got %s %r" % (
                    code, kind, body)
                assert body.get("code") == code, \
                    "expected code %s, got %r" % (code, body)
                err = body.get("error")
                assert isinstance(err, str) and err, "no error: %r" % body
                if field is not None:
                    assert field in err, \
                        "error %r does not name %r" % (err, field)
                if nak_id is not None and body.get("id") != nak_id:
                    missing_id.append("%s (%s): id %r" % (
                        label, code, body.get("id")))
                assert set(body) <= {"id", "code", "error"}, body
            res.run("%s -> %s" % (label, code), one)

        def nak_carries_id():
            assert not missing_id, \
                "the NAK lacks the readable id in %d cases: %s" % (
                    len(missing_id), "; ".join(missing_id))
        res.run("every NAK of a readable envelope carries its id",
                nak_carries_id)

        def id_conflict():
            publish_good("conflict")
            env = envelope(id_="conflict",
                           data=pbtest.feedback_data(relevance=5))
            kind, body = p.publish(env)
            assert (kind, body.get("code")) == ("NAK", "id_conflict"), body
            assert body.get("id") == "conflict", body
            assert "id" in body["error"], body
            # the same id from another src is another key
            env["src"] = "other"
            kind, body = p.publish(env)
            assert kind == "ACK", "same id, other src: %s %r" % (kind, body)
            acked[("other", "conflict")] = body["seq"]

        def notify_from_owner():
            publish_good("n-1", "notify.nac.rejected", src="nac",
                         data={"proposal": "P-1", "reason": "invalid_action"},
                         cause=1)

        def ordering():
            p.send(envelope(id_="ord-1"))
            p.send(envelope(id_="ord-2",
                            data=pbtest.feedback_data(relevance=0)))
            p.send(envelope(id_="ord-3"))
            p.send_frames([FEEDBACK])
            p.send(envelope(id_="ord-4"))
            replies = [p.recv() for _ in range(5)]
            kinds = [k for k, _ in replies]
            assert kinds == ["ACK", "NAK", "ACK", "NAK", "ACK"], replies
            assert [b.get("id") for _, b in replies[:3]] == \
                ["ord-1", "ord-2", "ord-3"], replies
            assert replies[4][1]["id"] == "ord-4"
            assert replies[2][1]["seq"] == replies[0][1]["seq"] + 1
            assert replies[4][1]["seq"] == replies[2][1]["seq"] + 1
            for k, b in replies:
                if k == "ACK":
                    acked[("it", b["id"])] = b["seq"]

        def frame_over_1mib():
            victim = pbtest.Producer(j)
            victim.send(envelope(id_="huge-frame"))
            assert victim.recv()[0] == "ACK"
            acked[("it", "huge-frame")] = None
            victim.send_frames([FEEDBACK, b"\x00" * (1024 * 1024 + 16)])
            assert not victim.poll(1500), \
                "a reply came to a frame over 1 MiB: %r" % (
                    victim.sock.recv_multipart(),)
            victim.close()
            publish_good("after-huge")

        def no_bad_in_log():
            publish_good("good-last")
            events, end = pbtest.full_log(j)
            pbtest.check_log_gapless(events, end)
            logged = {(e[2]["src"], e[2]["id"]): e[0] for e in events}
            expected = {k for k in acked}
            assert set(logged) == expected, \
                "log holds %r beyond the ACKed, misses %r" % (
                    sorted(set(logged) - expected),
                    sorted(expected - set(logged)))
            for key, seq in acked.items():
                if seq is not None:
                    assert logged[key] == seq, (key, seq, logged[key])
            assert j.alive(), "journal died"

        res.run("reused id with another body -> id_conflict", id_conflict)
        res.run("notify from its owner with cause is ACKed",
                notify_from_owner)
        res.run("pipelined good, bad, good: ACK, NAK, ACK in order",
                ordering)
        res.run("frame over 1 MiB: no reply, others still served",
                frame_over_1mib)
        res.run("log holds exactly the ACKed events, gapless",
                no_bad_in_log)
        p.close()
        if res.failed:
            print(j.log_tail())

    def unavailable():
        """A full log (map at its maximum: the journal's stand-in for a full
        disk) refuses with 'unavailable', keeps serving replay, and takes
        the refused events once it has room again."""
        opts = {"map-size": 1048576, "map-max": 1048576}
        with pbtest.Journal(args.journal, opts, log_name="it-nak-full") as f:
            f.start()
            acked, refused = {}, []
            with pbtest.Producer(f) as q:
                for chunk in range(40):
                    envs = [pbtest.sized_feedback("full-%d-%d" % (chunk, i),
                                                  size=1000)
                            for i in range(100)]
                    for env, (kind, body) in zip(envs, q.publish_all(envs)):
                        if kind == "ACK":
                            acked[env["id"]] = body["seq"]
                        else:
                            assert body["code"] == "unavailable", body
                            assert body.get("id") == env["id"], body
                            refused.append(env)
                    if len(refused) > 50:
                        break
                assert refused, "a 1 MiB map took 4 MB of events"
                assert f.alive(), "journal died on a full map"
                with pbtest.Replayer(f) as r:
                    assert r.status()["head"] == len(acked)
                events, end = pbtest.full_log(f)
                pbtest.check_log_gapless(events, end)
                assert {e[2]["id"]: e[0] for e in events} == acked
                # room again: restart with a larger maximum, resend
                f.kill9()
                f.options["map-max"] = 1 << 30
                f.start()
            with pbtest.Producer(f) as q:
                replies = q.publish_all(refused)
                assert all(k == "ACK" for k, _ in replies), replies[:2]
                assert replies[0][1]["seq"] == len(acked) + 1, replies[0]
            print("     %d ACKed, then 'unavailable' for %d" % (
                len(acked), len(refused)))

    res.run("full log -> unavailable, replay still served, resend later",
            unavailable)
    res.finish()


if __name__ == "__main__":
    main()
