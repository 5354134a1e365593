#!/usr/bin/python3
"""it_crash - nothing ACKed is lost when the journal is killed (-9).

Producers publish, pipelined, while the journal dies: at random moments
(kill -9 from here) and at each named crash point (PB_CRASH=<name>:<n>
makes the journal SIGKILL itself at the n-th hit): before_commit,
after_commit, after_ack, mid_fanout, map_grow, mid_replay. After each
death the journal restarts on the same data dir and a full replay checks
that every ACKed (src, id) is in the log exactly once, at the seq its ACK
gave, and that seqs are gapless 1..head. Producers resend whatever they
did not see ACKed, and a resend must get the seq of the first append.

  it_crash.py --bin-dir BUILD               # CI: 200 kills, a few minutes
  it_crash.py --bin-dir BUILD --kills 2000  # a soak (see crash_soak.sh)
"""

import collections
import random
import time

import zmq

import pbtest

POINTS = ["before_commit", "after_commit", "after_ack", "mid_fanout",
          "map_grow", "mid_replay"]
# n of PB_CRASH=<name>:<n> is drawn from 1..HITS[name]
HITS = {"before_commit": 8, "after_commit": 8, "after_ack": 8,
        "mid_fanout": 30, "map_grow": 1, "mid_replay": 6}
OPTIONS = {"map-size": 1048576, "map-max": 1 << 30, "replay-batch": 20,
           "heartbeat-interval": 100}


class Lane:
    """One producer: its src, the envelopes not yet ACKed, in order."""

    def __init__(self, src):
        self.src = src
        self.next_id = 0
        self.pending = collections.deque()   # to (re)send, in order
        self.inflight = collections.deque()  # sent on this connection
        self.sock = None

    def new_envelope(self):
        self.next_id += 1
        return pbtest.sized_feedback("%s-%d" % (self.src, self.next_id),
                                     src=self.src)


class CrashRun:
    def __init__(self, args):
        self.args = args
        self.rnd = random.Random(args.seed)
        self.violations = []
        self.figures = collections.Counter()
        self.journal = None
        self.acked = {}
        self.lanes = []
        self.segment = 0
        self.restart_time = 0.0

    # -- journal lifecycle ---------------------------------------------------

    def new_segment(self):
        """A fresh data dir and fresh producers (keeps each log small)."""
        if self.journal:
            self.finish_segment()
        self.segment += 1
        self.journal = pbtest.Journal(self.args.journal, OPTIONS,
                                      log_name="it-crash")
        self.acked = {}
        self.lanes = [Lane("s%d-p%d" % (self.segment, k))
                      for k in range(self.args.producers)]
        self.figures["segments"] += 1

    def start(self, env=None):
        t0 = time.time()
        self.journal.start(env=env)
        self.restart_time += time.time() - t0
        self.figures["starts"] += 1

    def violation(self, text):
        if len(self.violations) < 50:
            print("VIOLATION: " + text, flush=True)
        self.violations.append(text)

    # -- producing -----------------------------------------------------------

    def connect(self):
        for lane in self.lanes:
            lane.sock = pbtest._dealer(self.journal.ingest, 10)
            lane.pending.extendleft(reversed(lane.inflight))
            lane.inflight.clear()
            self.figures["resent"] += len(lane.pending)

    def disconnect(self):
        for lane in self.lanes:
            self.drain(lane, 0)
            lane.pending.extendleft(reversed(lane.inflight))
            lane.inflight.clear()
            lane.sock.close(0)
            lane.sock = None

    def on_reply(self, lane, frames):
        if len(frames) != 2 or not lane.inflight:
            self.violation("%s: unexpected reply %r" % (lane.src, frames[:2]))
            return
        kind = frames[0].decode()
        body = pbtest.unpack(frames[1])
        env = lane.inflight.popleft()
        key = (lane.src, env["id"])
        if body.get("id") != env["id"]:
            self.violation("%s: reply for %r while %r was next" % (
                lane.src, body.get("id"), env["id"]))
            return
        if kind == "ACK":
            seq = body["seq"]
            if key in self.acked and self.acked[key] != seq:
                self.violation("%r ACKed as seq %d, then as %d" % (
                    key, self.acked[key], seq))
            self.acked[key] = seq
            self.figures["acks"] += 1
        elif body.get("code") == "unavailable":
            lane.pending.appendleft(env)
        else:
            self.violation("%r refused: %r" % (key, body))

    def drain(self, lane, timeout_ms):
        while lane.sock.poll(timeout_ms):
            self.on_reply(lane, lane.sock.recv_multipart())
            timeout_ms = 0

    def pump(self, stop, new_budget, replayer=None):
        """Publish until stop() is true; new envelopes up to new_budget.
        A replayer, if given, is kept replaying from 1 with credit."""
        poller = zmq.Poller()
        for lane in self.lanes:
            poller.register(lane.sock, zmq.POLLIN)
        if replayer:
            poller.register(replayer.sock, zmq.POLLIN)
            replayer.command("REPLAY", {"from": 1, "credit": 2})
        window = self.args.window
        while not stop():
            for lane in self.lanes:
                while len(lane.inflight) < window:
                    if lane.pending:
                        env = lane.pending.popleft()
                    elif new_budget > 0:
                        env = lane.new_envelope()
                        new_budget -= 1
                    else:
                        break
                    lane.sock.send_multipart([b"activity.feedback",
                                              pbtest.pack(env)])
                    lane.inflight.append(env)
            ready = dict(poller.poll(10))
            for lane in self.lanes:
                if lane.sock in ready:
                    self.drain(lane, 0)
            if replayer and replayer.sock in ready:
                while replayer.sock.poll(0):
                    frames = replayer.sock.recv_multipart()
                    if frames[0] == b"EVENTS":
                        replayer.command("CREDIT", {"n": 1})
                    else:
                        replayer.command("REPLAY", {"from": 1, "credit": 2})
        return new_budget

    # -- one kill ------------------------------------------------------------

    def cycle(self, point):
        """Run producers until the journal dies; returns True if it did."""
        env = None
        if point:
            env = {"PB_CRASH": "%s:%d" % (point,
                                          self.rnd.randint(1, HITS[point]))}
        if self.journal.alive() and env:
            self.journal.kill9()          # idle, not counted
        if not self.journal.alive():
            self.start(env)
        self.connect()
        replayer = pbtest.Replayer(self.journal) if point == "mid_replay" \
            else None
        sub = None
        if point == "mid_fanout":
            sub = pbtest.CTX.socket(zmq.SUB)
            sub.setsockopt(zmq.LINGER, 0)
            sub.setsockopt(zmq.SUBSCRIBE, b"")
            sub.connect(self.journal.fanout)
        died = True
        if point is None:
            kill_at = time.time() + self.rnd.uniform(0.005, 0.25)
            self.pump(lambda: time.time() >= kill_at, 1500)
            self.journal.kill9()
        else:
            deadline = time.time() + self.args.point_timeout
            budget = 6000 if point == "map_grow" else 3000
            self.pump(lambda: not self.journal.alive()
                      or time.time() >= deadline, budget, replayer)
            if self.journal.alive():
                died = False
                self.violation("crash point %s (%s) was not hit in %.0f s"
                               % (point, env["PB_CRASH"],
                                  self.args.point_timeout))
                self.journal.kill9()
            else:
                rc = self.journal.proc.returncode
                if rc != -9:
                    self.violation("journal with %s exited with %r, not "
                                   "SIGKILL; log:\n%s" % (
                                       env["PB_CRASH"], rc,
                                       self.journal.log_tail()))
        if replayer:
            replayer.close()
        if sub:
            sub.close(0)
        self.disconnect()
        if died:
            self.figures["kills:" + (point or "random")] += 1
            self.figures["kills"] += 1
        return died

    # -- checking ------------------------------------------------------------

    def verify(self, content=False):
        """Restart clean and check the log against every ACK so far; with
        'content', also that each logged event is the envelope sent."""
        try:
            self.start()
        except RuntimeError as exc:
            self.violation("restart failed: %s" % exc)
            raise
        events, end = pbtest.full_log(self.journal, timeout=30)
        seqs = [e[0] for e in events]
        if seqs != list(range(1, len(seqs) + 1)) or end["head"] != len(seqs):
            self.violation("log not gapless 1..head (head %r, %d events)" % (
                end["head"], len(seqs)))
        logged = {}
        for seq, _, env, _ in events:
            key = (env.get("src"), env.get("id"))
            if key in logged:
                self.violation("%r logged twice, at %d and %d" % (
                    key, logged[key], seq))
            logged[key] = seq
            if content:
                sent = pbtest.sized_feedback(env.get("id"), src=env.get("src"))
                rest = {k: v for k, v in env.items() if k not in ("seq", "ts")}
                if rest != sent or env.get("seq") != seq:
                    self.violation("seq %d is not the envelope sent: %r"
                                   % (seq, env))
        lost = [k for k in self.acked if k not in logged]
        if lost:
            self.violation("%d ACKed events lost, e.g. %r" % (len(lost),
                                                              lost[:3]))
        moved = [k for k in self.acked
                 if k in logged and logged[k] != self.acked[k]]
        if moved:
            self.violation("%d ACKed events at another seq, e.g. %r" % (
                len(moved), [(k, self.acked[k], logged[k])
                             for k in moved[:3]]))
        self.figures["verified"] += 1
        self.figures["max_log"] = max(self.figures["max_log"], len(seqs))

    def finish_segment(self):
        """Resend everything still unACKed to a live journal, check, and
        drop the segment's data dir."""
        if not self.journal.alive():
            self.start()
        self.connect()
        deadline = time.time() + 60
        self.pump(lambda: all(not l.pending and not l.inflight
                              for l in self.lanes)
                  or time.time() > deadline, 0)
        self.disconnect()
        left = sum(len(l.pending) for l in self.lanes)
        if left:
            self.violation("%d events never ACKed after the last restart"
                           % left)
        self.journal.kill9()
        self.verify(content=True)
        self.journal.close()
        self.journal = None

    def run(self):
        kills = self.args.kills
        points = self.args.points
        per_point = max(1, int(kills * self.args.point_share / len(points))) \
            if points else 0
        plan = [p for p in points for _ in range(per_point)]
        plan += [None] * max(0, kills - len(plan))
        self.rnd.shuffle(plan)
        t0 = time.time()
        self.new_segment()
        in_segment = 0
        for i, point in enumerate(plan):
            if point == "map_grow" or in_segment >= self.args.segment:
                self.new_segment()       # map_grow needs a small map
                in_segment = 0
            in_segment += 1
            self.cycle(point)
            self.verify()
            if point == "map_grow":
                self.figures["map_grown_logs"] += 1
            if (i + 1) % 25 == 0:
                print("     %d/%d kills, %d ACKs, %d violations, %.0f s" % (
                    i + 1, len(plan), self.figures["acks"],
                    len(self.violations), time.time() - t0), flush=True)
        self.finish_segment()
        self.figures["seconds"] = int(time.time() - t0)
        self.figures["mean_restart_ms"] = int(
            1000 * self.restart_time / max(1, self.figures["starts"]))


def main():
    def extra(ap):
        ap.add_argument("--kills", type=int, default=200)
        ap.add_argument("--points", default=",".join(POINTS),
                        help="crash points to use, comma-separated")
        ap.add_argument("--point-share", type=float, default=0.5,
                        help="share of kills made by crash points")
        ap.add_argument("--producers", type=int, default=3)
        ap.add_argument("--window", type=int, default=200)
        ap.add_argument("--segment", type=int, default=15,
                        help="kills per data dir")
        ap.add_argument("--point-timeout", type=float, default=8.0)
        ap.add_argument("--seed", type=int, default=None)
    args = pbtest.parse_args(extra)
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    args.points = [p for p in args.points.split(",") if p]
    print("     seed %d (rerun with --seed %d)" % (args.seed, args.seed))
    res = pbtest.Results("it_crash")
    run = CrashRun(args)

    def crash_loop():
        try:
            run.run()
        finally:
            if run.journal:
                run.journal.close()
        print("     figures: " + ", ".join(
            "%s=%s" % kv for kv in sorted(run.figures.items())))
        assert run.figures["kills"] >= args.kills * 0.95, \
            "only %d kills" % run.figures["kills"]
        assert not run.violations, "%d violations, first: %s" % (
            len(run.violations), run.violations[0])

    res.run("%d kills: every ACK survives, exactly once, gapless"
            % args.kills, crash_loop)
    res.finish()


if __name__ == "__main__":
    main()
