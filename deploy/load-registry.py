#!/usr/bin/python3
"""load-registry - publish a JSON-lines file of events through ingest

Usage: deploy/load-registry.py [--ingest ENDPOINT] [--timeout SECS] FILE...

Each non-empty line (lines starting with '#' are comments) is one envelope
{id, src, type, data[, time]} as JSON. It is sent as MessagePack on a
DEALER to the journal's ingest (PROTOCOL.md, Publishing), all in flight at
once; the journal answers in order. Ids are stable, so loading the same
file twice changes nothing: the journal acknowledges a resend with the seq
the event got the first time.

Prints one line per input line: "ACK <id> <seq>" or
"NAK <id> <code> <error>". Exit status 0 if every line was ACKed, 1 if any
was refused or unreadable, 2 if the journal did not answer in time.
Needs Debian's python3-zmq and python3-msgpack (/usr/bin/python3).
"""
import json
import sys

import msgpack
import zmq


def read_events(paths):
    events = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                try:
                    env = json.loads(line)
                    if not isinstance(env, dict) or not isinstance(env.get("type"), str):
                        raise ValueError("not an envelope with a type")
                except ValueError as e:
                    events.append((None, "%s:%d: %s" % (path, number, e)))
                    continue
                events.append((env, None))
    return events


def main(argv):
    ingest = "tcp://127.0.0.1:7701"
    timeout = 10.0
    paths = []
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--ingest" and args:
            ingest = args.pop(0)
        elif arg == "--timeout" and args:
            timeout = float(args.pop(0))
        elif arg in ("-h", "--help"):
            print(__doc__)
            return 0
        else:
            paths.append(arg)
    if not paths:
        print(__doc__, file=sys.stderr)
        return 2
    events = read_events(paths)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(ingest)
    results = []           # one line per input line, in input order
    pending = []           # indexes into results awaiting a reply
    status = 0
    for env, error in events:
        if env is None:
            results.append("NAK - unreadable %s" % error)
            status = 1
            continue
        sock.send_multipart([env["type"].encode("utf-8"),
                             msgpack.packb(env, use_bin_type=True)])
        pending.append(len(results))
        results.append(env.get("id", "-"))
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    for index in pending:
        ident = results[index]
        if not poller.poll(timeout * 1000):
            results[index] = "TIMEOUT %s no answer from %s" % (ident, ingest)
            status = 2
            break
        frames = sock.recv_multipart()
        reply = msgpack.unpackb(frames[1], raw=False) if len(frames) == 2 else {}
        if frames[0] == b"ACK":
            results[index] = "ACK %s %s" % (reply.get("id", ident), reply.get("seq"))
        else:
            results[index] = "NAK %s %s %s" % (reply.get("id", ident), reply.get("code"),
                                               reply.get("error"))
            status = 1
    for line in results:
        print(line)
    sock.close()
    ctx.term()
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
