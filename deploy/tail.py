#!/usr/bin/python3
"""tail - print the journal's live events as JSON lines

Usage: deploy/tail.py [--fanout ENDPOINT] [--replay ENDPOINT] [--from SEQ] [PREFIX...]

Subscribes to the fanout for each PREFIX (all when none; `notify.` for the
notifications). With --from SEQ it first replays history from SEQ and then
goes on live with no gap and no repeat (subscribe first, replay, then drop
live events at or below what the replay delivered: proto/README.md). Stops
on Ctrl-C. Needs Debian's python3-zmq and python3-msgpack.
"""
import argparse
import json
import sys

import msgpack
import zmq


def show(env):
    print(json.dumps(env, ensure_ascii=False, separators=(",", ":")), flush=True)


def matches(kind, prefixes):
    return not prefixes or any(kind.startswith(p) for p in prefixes)


def replay(ctx, endpoint, start, prefixes):
    """Replay from 'start'; returns the seq the log was read through."""
    sock = ctx.socket(zmq.DEALER)
    sock.connect(endpoint)
    request = {"from": start, "credit": 4}
    if prefixes:
        request["prefixes"] = prefixes
    sock.send_multipart([b"REPLAY", msgpack.packb(request)])
    try:
        while True:
            frames = sock.recv_multipart()
            if frames[0] == b"EVENTS":
                for frame in frames[1:]:
                    show(msgpack.unpackb(frame, raw=False))
                sock.send_multipart([b"CREDIT", msgpack.packb({"n": 1})])
            elif frames[0] == b"END":
                return msgpack.unpackb(frames[1], raw=False)["through"]
            else:
                sys.exit("tail: replay refused: %r" % msgpack.unpackb(frames[1], raw=False))
    finally:
        sock.close(linger=0)


def main():
    parser = argparse.ArgumentParser(description="print live events as JSON lines")
    parser.add_argument("--fanout", default="tcp://127.0.0.1:7702")
    parser.add_argument("--replay", default="tcp://127.0.0.1:7703")
    parser.add_argument("--from", dest="start", type=int, default=0)
    parser.add_argument("prefixes", nargs="*")
    args = parser.parse_args()
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.connect(args.fanout)
    for prefix in args.prefixes or [""]:
        sub.setsockopt(zmq.SUBSCRIBE, prefix.encode())
    seen = 0
    if args.start > 0:
        seen = replay(ctx, args.replay, args.start, args.prefixes)
    try:
        while True:
            kind, body = sub.recv_multipart()
            env = msgpack.unpackb(body, raw=False)
            if kind == b"sys.heartbeat" or env.get("seq", 0) <= seen:
                continue
            if matches(kind.decode(), args.prefixes):
                show(env)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
