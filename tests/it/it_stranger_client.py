#!/usr/bin/python3
"""it_stranger_client - a client written as a stranger would write it.

The client part of this file uses only pyzmq and msgpack and what
proto/README.md says: it publishes events and reads their ACKs and NAKs,
subscribes to the fanout (including sys.heartbeat) and replays the log.
It is meant to be read as an example. Only the starting and stopping of
the journal process comes from the test harness (pbtest.Journal).
"""

import time

import msgpack
import zmq

import pbtest


class StrangerClient:
    """Everything a producer, subscriber and operator needs: ~60 lines."""

    def __init__(self, ingest, fanout, replay):
        self.ctx = zmq.Context.instance()
        # Ingest: a DEALER (never REQ: replies carry no empty delimiter).
        self.ingest = self.ctx.socket(zmq.DEALER)
        self.ingest.connect(ingest)
        # Fanout: a SUB, subscribed by type prefix.
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.connect(fanout)
        # Replay and control: a DEALER too.
        self.ctl = self.ctx.socket(zmq.DEALER)
        self.ctl.connect(replay)
        for s in (self.ingest, self.sub, self.ctl):
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.RCVTIMEO, 5000)

    def publish(self, event):
        """Two frames out (type, envelope); two frames back (ACK|NAK, map)."""
        self.ingest.send_multipart([event["type"].encode(),
                                    msgpack.packb(event)])
        kind, body = self.ingest.recv_multipart()
        return kind.decode(), msgpack.unpackb(body)

    def subscribe(self, prefix):
        self.sub.setsockopt(zmq.SUBSCRIBE, prefix.encode())

    def next_published(self):
        type_, body = self.sub.recv_multipart()
        return type_.decode(), msgpack.unpackb(body)

    def replay(self, frm, to=None, prefixes=None):
        """REPLAY, then EVENTS batches (grant one CREDIT each), then END."""
        request = {"from": frm}
        if to is not None:
            request["to"] = to
        if prefixes:
            request["prefixes"] = prefixes
        self.ctl.send_multipart([b"REPLAY", msgpack.packb(request)])
        events = []
        while True:
            frames = self.ctl.recv_multipart()
            if frames[0] == b"EVENTS":
                events += [msgpack.unpackb(f) for f in frames[1:]]
                self.ctl.send_multipart([b"CREDIT", msgpack.packb({"n": 1})])
            elif frames[0] == b"END":
                return events, msgpack.unpackb(frames[1])
            else:
                raise RuntimeError("replay refused: %r" % frames)

    def status(self):
        self.ctl.send(b"STATUS")
        kind, body = self.ctl.recv_multipart()
        assert kind == b"STATUS"
        return msgpack.unpackb(body)

    def close(self):
        for s in (self.ingest, self.sub, self.ctl):
            s.close()


def ally(country, name, joined, id_):
    return {"id": id_, "src": "stranger", "type": "registry.ally",
            "time": int(time.time() * 1000),
            "data": {"country": country, "name": name, "joined": joined}}


def main():
    args = pbtest.parse_args()
    res = pbtest.Results("it_stranger_client")
    with pbtest.Journal(args.journal, {"heartbeat-interval": 200},
                        log_name="it-stranger") as j:
        j.start()
        c = StrangerClient(j.ingest, j.fanout, j.replay)
        c.subscribe("registry.")
        c.subscribe("sys.heartbeat")
        # A subscription takes a moment to reach the journal: the first
        # heartbeat received proves it is in place
        while c.next_published()[0] != "sys.heartbeat":
            pass

        acked = {}
        events = [ally(code, name, joined, "a-%d" % i)
                  for i, (code, name, joined) in enumerate(
                      [("BEL", "Belgium", "1949-04-04"),
                       ("CAN", "Canada", "1949-04-04"),
                       ("FIN", "Finland", "2023-04-04")])]

        def publish_acks():
            for i, event in enumerate(events):
                kind, body = c.publish(event)
                assert kind == "ACK", "expected ACK, got %s %r" % (kind, body)
                assert body["id"] == "a-%d" % i, "ACK id %r" % body.get("id")
                assert isinstance(body["seq"], int) and body["seq"] >= 1
                acked[body["id"]] = body["seq"]
            seqs = sorted(acked.values())
            assert seqs == list(range(seqs[0], seqs[0] + 3)), \
                "seqs not consecutive: %r" % seqs

        def resend_same_seq():
            # a producer that missed its ACK sends the very same bytes again
            kind, body = c.publish(events[0])
            assert (kind, body.get("seq")) == ("ACK", acked["a-0"]), \
                "resend: %s %r, first seq %d" % (kind, body, acked["a-0"])
            # the same id with another body is refused
            other = dict(events[0], time=events[0]["time"] + 1)
            kind, body = c.publish(other)
            assert (kind, body.get("code")) == ("NAK", "id_conflict"), body

        def nak_bad_data():
            kind, body = c.publish(ally("bel", "Belgium", "1949-04-04",
                                        "bad-1"))
            assert kind == "NAK", "lower-case country ACKed: %r" % body
            assert body["code"] == "bad_data", body
            assert body.get("id") == "bad-1", body
            assert "country" in body["error"], \
                "error does not name the field: %r" % body["error"]

        def nak_unknown_type():
            ev = ally("BEL", "Belgium", "1949-04-04", "bad-2")
            ev["type"] = "registry.nothing"
            kind, body = c.publish(ev)
            assert (kind, body["code"]) == ("NAK", "unknown_type"), body

        def fanout_in_seq_order():
            got = []
            deadline = time.time() + 5
            while len(got) < 3 and time.time() < deadline:
                type_, env = c.next_published()
                if type_ == "registry.ally":
                    assert env["type"] == type_
                    assert "ts" in env and "seq" in env
                    got.append((env["id"], env["seq"]))
            assert [s for _, s in got] == sorted(acked.values()), \
                "fanout %r, ACKed %r" % (got, acked)
            assert dict(got) == acked

        def heartbeat():
            deadline = time.time() + 5
            while time.time() < deadline:
                type_, env = c.next_published()
                if type_ == "sys.heartbeat":
                    assert env["head"] == max(acked.values()), \
                        "heartbeat head %r, last ACK %r" % (env, acked)
                    assert isinstance(env["ts"], int)
                    return
            raise AssertionError("no sys.heartbeat in 5 s")

        def replay_all():
            events, end = c.replay(1)
            mine = {e["id"]: e["seq"] for e in events
                    if e["src"] == "stranger"}
            assert mine == acked, "replay %r, ACKed %r" % (mine, acked)
            assert end["head"] == max(acked.values()), end
            assert end["through"] == end["head"], end
            assert end["count"] == len(events), end
            assert c.status()["head"] == end["head"]

        def replay_prefix_and_range():
            first = min(acked.values())
            events, end = c.replay(first + 1, to=first + 1,
                                   prefixes=["registry."])
            assert [e["seq"] for e in events] == [first + 1], events
            assert end["through"] == first + 1 and end["count"] == 1, end
            events, end = c.replay(1, prefixes=["cpe."])
            assert events == [] and end["count"] == 0, end
            assert end["through"] == end["head"], end

        res.run("publish gets ACKs with consecutive seqs", publish_acks)
        res.run("resend gets the same seq", resend_same_seq)
        res.run("bad data gets NAK bad_data naming the field", nak_bad_data)
        res.run("unknown type gets NAK unknown_type", nak_unknown_type)
        res.run("fanout delivers the ACKed events in seq order",
                fanout_in_seq_order)
        res.run("sys.heartbeat carries the head", heartbeat)
        res.run("replay of everything equals what was ACKed", replay_all)
        res.run("replay by range and by prefix", replay_prefix_and_range)
        c.close()
    res.finish()


if __name__ == "__main__":
    main()
