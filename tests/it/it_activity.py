#!/usr/bin/python3
"""it_activity - the activities and feedback worker, black box (EVENTS.md,
"Activities and feedback" and "Every worker")

A real pb-journal (manual clock: TICK {now} on its control socket), pb-nac
(the Council adopts the proposals) and pb-activity, on free 127.0.0.1
ports and temp dirs. Each step publishes upstream events (or ticks), waits
until the log is quiescent, and compares the activity worker's new
notifications in the log (notify.activity.*, notify.partner.*,
notify.consultation.*) with the exact list expected, in order:

  - priority at registration, with non-trivial weights, DIALOGUE
    countries and Allies left out of the average; profile upserts that
    change it; an upsert that changes nothing yields nothing; partners
    added by an adopted activity.open; an accession making a partner an
    Ally; a policy that changes the weights;
  - discard_candidate on crossing only, again after false -> true, also
    when a policy change makes it true;
  - review_due once per period, the next one a period later, restarted by
    feedback;
  - opened, discarded (feedback after it: rejected closed), rejected
    unknown_activity;
  - access_changed, the programme kept after a later registry upsert
    (read from the store's dump);
  - convened with informed (active, non-DIALOGUE, non-Ally partners not
    taking part, sorted);
  - a second activity.registered is quarantined;
  - determinism: a fresh pb-activity on an empty dir against the same
    journal ends with a byte-identical --dump, and the head does not move
    (its notifications were byte-identical resends).

Usage: it_activity.py --bin-dir BUILD
"""

import time

import pbtest
import system

DAY = 86400000
T0 = 1700000000000
PREFIXES = ["notify.activity.", "notify.partner.", "notify.consultation."]
CONS = ["aspires_membership", "shares_values", "supports_operations",
        "strategic_importance", "bilateral_framework", "finances_activities",
        "priority_area"]
#  Non-trivial weights (W = 22), in CONS order
WEIGHTS = [5, 2, 3, 0, 1, 4, 7]


def profile(*held):
    return {c: c in held for c in CONS[:6]}


def score(partners, priority_area, weights=WEIGHTS):
    """Reference: the integer formula of EVENTS.md over the profiles of
    the partners counted."""
    n = len(partners) or 1
    counts = [sum(1 for p in partners if p.get(c)) for c in CONS[:6]]
    counts.append(n if priority_area else 0)
    w_total = sum(weights)
    weighted = sum(w * c for w, c in zip(weights, counts))
    return (200 * weighted + n * w_total) // (2 * n * w_total), \
        [c / n for c in counts]


class World:
    """The journal, the two workers, a producer, and a cursor in the log."""

    def __init__(self, args):
        self.binaries = {n: system.find_worker(args.bin_dir, n)
                         for n in ("nac", "activity")}
        self.journal = pbtest.Journal(args.journal, {"clock": "manual"},
                                      log_name="pb-it-activity")
        self.workers = {}
        self.producer = None
        self.control = None
        self.cursor = 0
        self.serial = 0
        self.now = 0

    def start(self):
        self.journal.start()
        for name, binary in self.binaries.items():
            self.workers[name] = system.Worker(name, binary,
                                               self.journal).start()
        self.producer = pbtest.Producer(self.journal)
        self.control = pbtest.Replayer(self.journal)

    def close(self):
        for closer in (self.producer, self.control):
            if closer:
                closer.close()
        for w in self.workers.values():
            w.close()
        self.journal.close()

    def publish(self, type_, data):
        self.serial += 1
        env = {"id": "it-activity-%d" % self.serial, "src": "it",
               "type": type_, "data": data}
        kind, body = self.producer.publish(env)
        assert kind == "ACK", "%s NAKed: %r" % (type_, body)
        return body["seq"]

    def tick(self, now):
        kind, body = self.control.tick(now)
        assert kind == "TICKED", "TICK %d: %s %r" % (now, kind, body)
        self.now = now
        return body["seq"]

    def quiet(self):
        return system.wait_quiescent(self.journal,
                                     list(self.workers.values()),
                                     timeout=60, stable=0.3)

    def new_notes(self):
        """The activity worker's notifications logged since the last call,
        as (type, data), after quiescence."""
        head = self.quiet()
        with pbtest.Replayer(self.journal, timeout=30) as r:
            events, _, _ = r.replay(self.cursor + 1, prefixes=PREFIXES)
        self.cursor = head
        for _, _, env, _ in events:
            assert env["src"] == "activity", env
        return [(env["type"], env["data"]) for _, _, env, _ in events]

    def expect(self, want, what):
        got = self.new_notes()
        assert got == want, "%s:\n  got  %r\n  want %r" % (what, got, want)

    def propose(self, proposal, action):
        """A proposal under the meeting procedure, agreed at once."""
        self.publish("nac.proposal", {"proposal": proposal, "action": action,
                                      "procedure": "meeting"})
        self.publish("nac.meeting", {"proposal": proposal,
                                     "outcome": "agreed"})

    # -- upstream events

    def partner(self, country, frameworks, status="active", prof=None,
                programmes=None, name=None):
        data = {"country": country, "name": name or country,
                "frameworks": frameworks, "status": status}
        if prof is not None:
            data["profile"] = prof
        if programmes is not None:
            data["programmes"] = programmes
        return self.publish("registry.partner", data)

    def register(self, activity, area, partners, days=None):
        data = {"activity": activity, "title": "Activity " + activity,
                "area": area, "tool": "PCM", "partners": partners}
        if days is not None:
            data["review_every_days"] = days
        return self.publish("activity.registered", data)

    def feedback(self, activity, relevance, effectiveness=3):
        return self.publish("activity.feedback", {
            "activity": activity, "from": "UKR", "relevance": relevance,
            "effectiveness": effectiveness})


def priority(activity, value, factors):
    return ("notify.activity.priority",
            {"activity": activity, "score": value,
             "factors": dict(zip(CONS, factors))})


def candidate(activity, mean, feedbacks):
    return ("notify.activity.discard_candidate",
            {"activity": activity, "mean_relevance": mean,
             "feedbacks": feedbacks})


def review_due(activity, last):
    return ("notify.activity.review_due",
            {"activity": activity, "last_feedback": last})


def rejected(activity, reason):
    return ("notify.activity.rejected",
            {"activity": activity, "reason": reason})


def dump_value(dump, key):
    """The value of state key 'key' in a --dump, unpacked (None if absent)."""
    prefix = b"state " + key.encode() + b" "
    for line in dump.splitlines():
        if line.startswith(prefix):
            return pbtest.unpack(bytes.fromhex(line[len(prefix):].decode()))
    return None


UKR = profile("aspires_membership", "shares_values", "supports_operations")
GEO = profile("aspires_membership", "bilateral_framework")
GEO2 = profile("aspires_membership", "bilateral_framework",
               "finances_activities")
JPN = profile("shares_values", "supports_operations", "strategic_importance",
              "finances_activities")
ALL = profile(*CONS[:6])


def main():
    args = pbtest.parse_args()
    res = pbtest.Results("it_activity")
    w = World(args)
    try:
        w.start()

        def reference_data():
            for c in ("FRA", "DEU", "USA"):
                w.publish("registry.ally", {"country": c, "name": c,
                                            "joined": "1949-04-04"})
            w.partner("UKR", ["EAPC", "PFP"], prof=UKR)
            w.partner("GEO", ["EAPC"], prof=GEO)
            w.partner("JPN", ["PATG"], prof=JPN)
            w.partner("CHN", ["DIALOGUE"], prof=ALL)
            w.partner("FIN", ["EAPC"], prof=ALL)
            w.partner("RUS", ["EAPC"], status="suspended", prof=ALL)
            w.partner("MAR", ["MD"])
            w.publish("registry.policy", {"weights": dict(zip(CONS, WEIGHTS))})
            w.tick(T0)
            w.expect([], "registry events of activities not yet registered")
        res.run("reference data and a weighted policy yield nothing",
                reference_data)

        def registered():
            # UKR and GEO count; CHN (DIALOGUE) and FRA (an Ally) do not.
            # Hand-computed: c = 2,1,1,0,1,0,2 -> sum w*c = 30, W = 22:
            # (200*30 + 2*22) div (2*2*22) = 6044 div 88 = 68
            value, factors = score([UKR, GEO], True)
            assert value == 68 and factors == [1, .5, .5, 0, .5, 0, 1]
            w.register("X1", "defence_reform", ["UKR", "GEO", "CHN", "FRA"])
            w.expect([priority("X1", 68, factors)], "X1 registered")
        res.run("priority at registration (DIALOGUE and Allies left out)",
                registered)

        def profile_upserts():
            # GEO now finances activities: sum 34 -> 6844 div 88 = 77
            value, factors = score([UKR, GEO2], True)
            assert value == 77
            w.partner("GEO", ["EAPC"], prof=GEO2)
            w.expect([priority("X1", 77, factors)], "GEO profile upsert")
            w.partner("GEO", ["EAPC"], prof=GEO2)
            w.expect([], "the same upsert again")
            w.partner("GEO", ["EAPC"], name="Georgia")
            w.expect([], "a name change: the score stays 77")
            w.partner("CHN", ["DIALOGUE"], prof=profile())
            w.expect([], "a DIALOGUE profile does not count")
        res.run("profile upserts change the score; no change, no notice",
                profile_upserts)

        def opened():
            # JPN counts, DEU is an Ally: n = 3, c = 2,2,2,1,1,2,3,
            # sum 50, (10000 + 66) div 132 = 76; priority, then opened
            value, factors = score([UKR, GEO2, JPN], True)
            assert value == 76
            w.propose("P-OPEN", {"kind": "activity.open", "activity": "X1",
                                 "partners": ["JPN", "DEU", "UKR"]})
            w.expect([priority("X1", 76, factors),
                      ("notify.activity.opened",
                       {"activity": "X1", "partners": ["JPN", "DEU"]})],
                     "adopted activity.open")
        res.run("opened (partners added) and the new score", opened)

        def accession():
            # X2 (area other): FIN and UKR, c = 2,2,2,1,1,1,0, sum 25,
            # (5000 + 44) div 88 = 57; FIN joins: UKR alone, sum 10,
            # (2000 + 22) div 44 = 45
            v1, f1 = score([ALL, UKR], False)
            v2, f2 = score([UKR], False)
            assert (v1, v2) == (57, 45)
            w.register("X2", "other", ["FIN", "UKR"])
            w.expect([priority("X2", 57, f1)], "X2 registered")
            w.propose("P-ACC", {"kind": "accession", "country": "FIN",
                                "effective": "2023-04-04"})
            w.expect([priority("X2", 45, f2)], "FIN's accession adopted")
        res.run("an accession takes the new Ally out of the score",
                accession)

        def weights_change():
            # All weights 1 except priority_area 3 (W = 9):
            # X1: c = 2,2,2,1,1,2,3 -> 10 + 9 = 19: (3800+27) div 54 = 70
            # X2: c = 1,1,1,0,0,0,0 -> 3: (600+9) div 18 = 33
            weights = [1, 1, 1, 1, 1, 1, 3]
            v1, f1 = score([UKR, GEO2, JPN], True, weights)
            v2, f2 = score([UKR], False, weights)
            assert (v1, v2) == (70, 33)
            w.publish("registry.policy", {"weights": dict(zip(CONS, weights))})
            w.expect([priority("X1", v1, f1), priority("X2", v2, f2)],
                     "policy weights changed")
            w.publish("registry.policy", {"weights": dict(zip(CONS, weights))})
            w.expect([], "the same policy again")
        res.run("a policy changing the weights rescores every activity",
                weights_change)

        def discard():
            w.register("X3", "other", [])
            w.expect([priority("X3", 0, [0] * 7)], "X3 registered")
            w.feedback("X3", 2)
            w.feedback("X3", 2)
            w.expect([], "two feedbacks: below the minimum of 3")
            w.feedback("X3", 2)
            w.expect([candidate("X3", 2.0, 3)], "third feedback: mean 2")
            w.feedback("X3", 2)
            w.expect([], "still true: no new notice")
            w.feedback("X3", 5)
            w.expect([], "13/5 = 2.6: false")
            w.feedback("X3", 1)
            w.expect([candidate("X3", 14 / 6, 6)], "14/6: true again")
            w.publish("registry.policy", {"discard_below": 2.0})
            w.expect([], "policy makes it false")
            w.publish("registry.policy", {"discard_below": 3.0,
                                          "discard_min_feedbacks": 6})
            w.expect([candidate("X3", 14 / 6, 6)], "policy makes it true")
            w.feedback("X3", 4)
            w.expect([], "18/7 < 3: still true")
        res.run("discard_candidate on crossing only, also by policy",
                discard)

        def review():
            # No partners, a priority area, weights 1,1,1,1,1,1,3:
            # (200 * 3 + 9) div 18 = 33
            value, factors = score([], True, [1, 1, 1, 1, 1, 1, 3])
            assert value == 33 and factors == [0] * 6 + [1]
            w.register("X4", "operations", [], days=2)
            w.expect([priority("X4", 33, factors)], "X4 registered")
            w.tick(T0 + 2 * DAY - 1)
            w.expect([], "one ms before the period")
            w.tick(T0 + 2 * DAY)
            w.expect([review_due("X4", T0)], "the period is over")
            w.tick(T0 + 3 * DAY)
            w.expect([], "once per period")
            w.tick(T0 + 4 * DAY)
            w.expect([review_due("X4", T0)], "a period later, still none")
            w.tick(T0 + 4 * DAY + 3600000)
            w.feedback("X4", 4)
            w.tick(T0 + 6 * DAY)
            w.expect([], "feedback restarted the period")
            w.tick(T0 + 6 * DAY + 3600000)
            w.expect([review_due("X4", T0 + 4 * DAY + 3600000)],
                     "a period after the feedback")
            w.tick(T0 + 13 * DAY)
            w.expect([review_due("X4", T0 + 4 * DAY + 3600000)],
                     "a tick over several periods: one review_due")
            w.tick(T0 + 14 * DAY + 3600000 - 1)
            w.expect([], "next boundary after that tick not reached")
            w.tick(T0 + 14 * DAY + 3600000)
            w.expect([review_due("X4", T0 + 4 * DAY + 3600000)],
                     "next boundary")
        res.run("review_due once per period", review)

        def discarded():
            w.propose("P-DISC", {"kind": "activity.discard",
                                 "activity": "X1"})
            w.expect([("notify.activity.discarded",
                       {"activity": "X1", "proposal": "P-DISC"})],
                     "adopted activity.discard")
            w.feedback("X1", 5)
            w.expect([rejected("X1", "closed")], "feedback on a closed one")
            w.feedback("NOPE", 5)
            w.expect([rejected("NOPE", "unknown_activity")],
                     "feedback on an unknown one")
            w.partner("JPN", ["PATG"], prof=ALL)
            w.expect([], "a closed activity is not rescored")
        res.run("discarded, then rejected closed / unknown_activity",
                discarded)

        def access():
            w.propose("P-IPAP", {"kind": "programme.open", "partner": "GEO",
                                 "programme": "IPAP"})
            w.expect([("notify.partner.access_changed",
                       {"partner": "GEO", "programme": "IPAP",
                        "proposal": "P-IPAP"})], "adopted programme.open")
            w.partner("GEO", ["EAPC"], programmes=["IPCP"])
            w.expect([], "registry upsert of GEO's programmes")
            dump = w.workers["activity"].dump()
            assert dump_value(dump, "access/GEO") == ["IPAP"], \
                dump_value(dump, "access/GEO")
            w.propose("P-PARP", {"kind": "programme.open", "partner": "GEO",
                                 "programme": "PARP"})
            w.expect([("notify.partner.access_changed",
                       {"partner": "GEO", "programme": "PARP",
                        "proposal": "P-PARP"})], "a second programme")
            w.partner("GEO", ["EAPC"], programmes=[])
            w.expect([], "registry upsert clearing GEO's programmes")
            dump = w.workers["activity"].dump()
            assert dump_value(dump, "access/GEO") == ["IPAP", "PARP"], \
                dump_value(dump, "access/GEO")
        res.run("access_changed; the access survives registry upserts",
                access)

        def convened():
            # Informed: active, non-DIALOGUE, non-Ally partners not taking
            # part: not CHN (DIALOGUE), FIN (an Ally now), RUS (suspended)
            w.propose("P-CONV", {"kind": "consultation.convene",
                                 "subject": "Black Sea security",
                                 "participants": ["UKR", "GEO"]})
            w.expect([("notify.consultation.convened",
                       {"subject": "Black Sea security",
                        "participants": ["UKR", "GEO"],
                        "informed": ["JPN", "MAR"]})],
                     "adopted consultation.convene")
        res.run("convened with informed, sorted", convened)

        def duplicate():
            seq = w.register("X2", "operations", ["GEO"])
            notes = w.new_notes()
            assert len(notes) == 1 and notes[0][0] == \
                "notify.activity.quarantined", notes
            data = notes[0][1]
            assert data["seq"] == seq and data["type"] == \
                "activity.registered" and "already registered" in \
                data["reason"], data
            w.feedback("X2", 1)
            w.expect([], "X2 kept its first registration")
        res.run("a second activity.registered is quarantined", duplicate)

        def determinism():
            live = w.workers.pop("activity")
            w.workers["activity-live"] = live
            head = w.quiet()
            live_dump = live.dump()
            # Only the expected quarantine (no notification was refused)
            qlines = [l for l in live_dump.splitlines()
                      if l.startswith(b"quarantine ")]
            assert len(qlines) == 1, qlines
            del w.workers["activity-live"]
            rc = live.term()
            live.close()
            assert rc == 0, "pb-activity exited %r: %s" % (rc, live.log_tail())
            fresh = system.Worker("activity", w.binaries["activity"],
                                  w.journal).start()
            w.workers["activity-rebuilt"] = fresh
            system.wait_applied(fresh, head, timeout=60)
            time.sleep(0.5)
            head2 = w.quiet()
            assert head2 == head, "the rebuild appended %d events" % (
                head2 - head)
            fresh_dump = fresh.dump()
            assert fresh_dump == live_dump, system.dump_diff(live_dump,
                                                             fresh_dump)
            print("     %d dump lines identical at head %d" % (
                len(live_dump.splitlines()), head), flush=True)
        res.run("a rebuilt store is byte-identical (--dump)", determinism)
    finally:
        w.close()
    res.finish()


if __name__ == "__main__":
    main()
