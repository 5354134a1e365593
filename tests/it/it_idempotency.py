#!/usr/bin/python3
"""it_idempotency - resends are deduplicated, and pipelined producers get
every ACK, in order, alone and concurrently; the hash chain stays whole
(pbctl verify) where resends in pipelined batches made the journal's
records built ahead of their batch miss."""

import json
import os
import subprocess
import threading

import pbtest
from pbtest import envelope


def main():
    def extra(ap):
        ap.add_argument("--inflight", type=int, default=10000)
        ap.add_argument("--producers", type=int, default=4)
        ap.add_argument("--per-producer", type=int, default=2000)
    args = pbtest.parse_args(extra)
    res = pbtest.Results("it_idempotency")
    with pbtest.Journal(args.journal, log_name="it-idem") as j:
        j.start()
        p = pbtest.Producer(j, timeout=30)
        acked = {}

        def resend_same_seq():
            env = envelope(id_="once")
            kind, body = p.publish(env)
            assert kind == "ACK", body
            first = body["seq"]
            acked[("it", "once")] = first
            for _ in range(5):
                kind, body = p.publish(env)
                assert (kind, body["seq"]) == ("ACK", first), \
                    "resend: %s %r, first seq %d" % (kind, body, first)
            # a resend pipelined with itself, in one batch
            for _ in range(10):
                p.send(env)
            for _ in range(10):
                kind, body = p.recv()
                assert (kind, body["seq"]) == ("ACK", first), body
            # the same pairs under a map 16 header instead of a fixmap are
            # the same envelope (proto/README.md, Ingest): the same seq;
            # one pair's encoding changed (a str 8 for a fixstr) is not
            raw = pbtest.pack(env)
            assert 0x80 <= raw[0] <= 0x8f, "want a fixmap: %r" % raw[:1]
            wide = bytes([0xde, 0, raw[0] & 0x0f]) + raw[1:]
            kind, body = p.publish(wide, env["type"])
            assert (kind, body["seq"]) == ("ACK", first), (kind, body)
            key = b"\xa2id"
            at = raw.index(key) + len(key)
            assert 0xa0 <= raw[at] <= 0xbf, "id not a fixstr: %r" % raw
            n = raw[at] & 0x1f
            recoded = raw[:at] + bytes([0xd9, n]) + raw[at + 1:]
            kind, body = p.publish(recoded, env["type"])
            assert (kind, body.get("code")) == ("NAK", "id_conflict"), \
                (kind, body)
            # a resend with the keys in another order is another envelope
            # byte-wise; the journal may ACK it (same meaning) or refuse
            # it (id_conflict), but never append it again
            reordered = {k: env[k] for k in reversed(list(env))}
            kind, body = p.publish(reordered)
            assert kind == "ACK" and body["seq"] == first or \
                kind == "NAK" and body["code"] == "id_conflict", body
            with pbtest.Replayer(j) as r:
                events, end, _ = r.replay(1)
            ids = [e[2]["id"] for e in events]
            assert ids.count("once") == 1, "appended %d times" % ids.count(
                "once")
            assert end["head"] == first, end

        def resend_after_others():
            envs = [envelope(id_="mix-%d" % i) for i in range(50)]
            first = [b["seq"] for k, b in p.publish_all(envs)]
            again = p.publish_all(envs[::-1] + envs)
            assert [b["seq"] for _, b in again] == first[::-1] + first, \
                "resends got other seqs"
            for e, s in zip(envs, first):
                acked[("it", e["id"])] = s

        def inflight():
            n = args.inflight
            envs = [pbtest.sized_feedback("fly-%d" % i, src="fly")
                    for i in range(n)]
            for e in envs:
                p.send(e)
            replies = [p.recv() for _ in range(n)]
            bad = [(i, r) for i, r in enumerate(replies) if r[0] != "ACK"]
            assert not bad, "%d not ACKed, first %r" % (len(bad), bad[0])
            ids = [b["id"] for _, b in replies]
            assert ids == [e["id"] for e in envs], "ACKs out of order"
            seqs = [b["seq"] for _, b in replies]
            assert seqs == list(range(seqs[0], seqs[0] + n)), \
                "seqs not consecutive"
            for e, s in zip(envs, seqs):
                acked[("fly", e["id"])] = s

        def concurrent():
            out = {}
            errors = []

            def run(k):
                try:
                    with pbtest.Producer(j, timeout=30) as q:
                        envs = [pbtest.sized_feedback("c-%d" % i,
                                                      src="prod-%d" % k)
                                for i in range(args.per_producer)]
                        # each producer resends its first 100 too
                        replies = q.publish_all(envs + envs[:100],
                                                window=500)
                        out[k] = (envs, replies)
                except Exception as exc:  # noqa: BLE001
                    errors.append("producer %d: %r" % (k, exc))

            threads = [threading.Thread(target=run, args=(k,))
                       for k in range(args.producers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            assert not errors, errors
            all_seqs = []
            for k, (envs, replies) in out.items():
                assert all(r[0] == "ACK" for r in replies), \
                    "producer %d got a NAK" % k
                assert [b["id"] for _, b in replies] == \
                    [e["id"] for e in envs + envs[:100]], \
                    "producer %d: ACKs out of order" % k
                seqs = [b["seq"] for _, b in replies]
                assert seqs[-100:] == seqs[:100], \
                    "producer %d: resends got new seqs" % k
                assert seqs[:len(envs)] == sorted(seqs[:len(envs)]), \
                    "producer %d: seqs not increasing" % k
                all_seqs += seqs[:len(envs)]
                for e, s in zip(envs, seqs):
                    acked[(e["src"], e["id"])] = s
            assert len(set(all_seqs)) == len(all_seqs), "a seq given twice"

        def log_matches():
            events, end = pbtest.full_log(j, timeout=60)
            pbtest.check_log_gapless(events, end)
            logged = {}
            for seq, _, env, _ in events:
                key = (env["src"], env["id"])
                assert key not in logged, "%r logged twice" % (key,)
                logged[key] = seq
            assert logged == acked, "log differs from the ACKs (%d vs %d)" % (
                len(logged), len(acked))

        def chain_intact():
            pbctl = os.path.join(args.bin_dir, "services", "ctl", "pbctl")
            log_dir = os.path.join(j.data_dir, "log")
            proc = subprocess.run([pbctl, "verify", "--json", "--dir", log_dir],
                                  capture_output=True, timeout=60)
            out = proc.stdout.decode().strip()
            report = json.loads(out) if out else {}
            assert proc.returncode == 0 and report.get("status") == "intact", \
                "pbctl verify: exit %d, %r %s" % (proc.returncode, report,
                                                  proc.stderr.decode())
            head = max(acked.values())
            assert report.get("head") == head, \
                "verify head %r, last ACKed seq %d" % (report.get("head"), head)

        res.run("resend gets the same seq, appended once", resend_same_seq)
        res.run("resends among others keep their seqs", resend_after_others)
        res.run("%d in flight from one producer: every ACK, in order"
                % args.inflight, inflight)
        res.run("%d concurrent producers" % args.producers, concurrent)
        res.run("log = ACKs: each (src, id) once, gapless", log_matches)
        res.run("the hash chain is intact (pbctl verify)", chain_intact)
        p.close()
    res.finish()


if __name__ == "__main__":
    main()
