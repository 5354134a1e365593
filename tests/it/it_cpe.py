#!/usr/bin/python3
"""it_cpe - the Contact Point Embassy worker, black box (EVENTS.md,
"Contact Point Embassies"): a real pb-journal (manual clock), pb-nac and
pb-cpe on free 127.0.0.1 ports and temp dirs, spoken to only through the
wire (ingest, TICK on the control socket, REPLAY of the notifications) and
the workers' command line (--dump).

One long story on one log checks each rule in turn (every rejection
reason, waiting for the Council, blocked, `from`, renewal, the notice at
90 days, a term running out across two years of TICKs, volunteers,
accession, suspension), then rebuilds pb-cpe's store from the log into an
empty dir and compares the dumps byte for byte. More logs check that a
handover arriving before its adoption ends as one arriving after, that
one waiting on a proposal the Council refuses as invalid_action is a
decision_mismatch, and that the decision is the first nac.proposal of its
id, whatever a later duplicate names.

Run with /usr/bin/python3 (the pyenv python3 on PATH has no zmq).
"""

import calendar
import datetime
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pbtest      # noqa: E402
import system      # noqa: E402

DAY_MS = 86400000


def ms(date, plus=0):
    """Log time of a date's UTC midnight, plus 'plus' ms."""
    d = datetime.date.fromisoformat(date)
    return calendar.timegm(d.timetuple()) * 1000 + plus


class Cluster:
    """A journal and the nac and cpe workers; 'nac' False leaves pb-nac
    to be started later (start_nac)."""

    def __init__(self, args, name, nac=True):
        self.journal = pbtest.Journal(args.journal, log_name="it-cpe-" + name)
        self.journal.start()
        self.nac = system.Worker("nac", system.find_worker(args.bin_dir, "nac"),
                                 self.journal)
        self.cpe_bin = system.find_worker(args.bin_dir, "cpe")
        self.cpe = system.Worker("cpe", self.cpe_bin, self.journal)
        if nac:
            self.nac.start()
        self.cpe.start()
        self.producer = pbtest.Producer(self.journal, timeout=10)
        self.control = pbtest.Replayer(self.journal, timeout=10)
        self.count = 0
        self.seen = 0

    def start_nac(self):
        self.nac.start()

    def workers(self):
        return [w for w in (self.nac, self.cpe) if w.alive()]

    def pub(self, type_, data):
        self.count += 1
        env = {"id": "it-cpe-%d" % self.count, "src": "it", "type": type_,
               "data": data}
        kind, body = self.producer.publish(env)
        assert kind == "ACK", "%s NAKed: %r" % (type_, body)
        return body["seq"]

    def tick(self, now):
        kind, body = self.control.tick(now)
        assert kind == "TICKED", "TICK %d: %s %r" % (now, kind, body)

    def quiet(self):
        return system.wait_quiescent(self.journal, self.workers(),
                                     timeout=30, stable=0.3)

    def cpe_notes(self):
        return [n for n in system.notifications(self.journal)
                if n["src"] == "cpe"]

    def take(self):
        """The cpe notifications logged since the last take, once the
        system is quiet: [(short type, data)]."""
        self.quiet()
        notes = self.cpe_notes()
        new = notes[self.seen:]
        self.seen = len(notes)
        return [(n["type"][len("notify.cpe."):], n["data"]) for n in new]

    def expect(self, *expected):
        got = self.take()
        assert got == list(expected), "got %r\n   want %r" % (
            got, list(expected))

    # Upstream events
    def ally(self, c):
        self.pub("registry.ally", {"country": c, "name": c,
                                   "joined": "1949-04-04"})

    def partner(self, c, fw="EAPC", status="active"):
        self.pub("registry.partner", {"country": c, "name": c,
                                      "frameworks": [fw], "status": status})

    def proposal(self, pid, partner, ally):
        return self.pub("nac.proposal", {
            "proposal": pid, "procedure": "meeting",
            "action": {"kind": "cpe.assign", "partner": partner,
                       "ally": ally}})

    def meeting(self, pid, outcome="agreed"):
        self.pub("nac.meeting", {"proposal": pid, "outcome": outcome})

    def programme(self, pid, partner, programme="PARP"):
        """A proposal of another kind than cpe.assign, naming 'partner'."""
        return self.pub("nac.proposal", {
            "proposal": pid, "procedure": "meeting",
            "action": {"kind": "programme.open", "partner": partner,
                       "programme": programme}})

    def nac_notes(self):
        """The Council worker's notifications: [(type, data)]."""
        self.quiet()
        return [(n["type"], n["data"]) for n in
                system.notifications(self.journal) if n["src"] == "nac"]

    def adopt(self, pid, partner, ally):
        self.proposal(pid, partner, ally)
        self.meeting(pid)

    def handover(self, partner, to, decision, effective, frm=None):
        data = {"partner": partner, "to": to, "decision": decision,
                "effective": effective}
        if frm:
            data["from"] = frm
        return self.pub("cpe.handover", data)

    def volunteer(self, ally, partner):
        self.pub("cpe.volunteer", {"ally": ally, "partner": partner})

    def close(self):
        for w in (self.nac, self.cpe):
            w.close()
        self.producer.close()
        self.control.close()
        self.journal.close()


def rejected(partner, reason):
    return ("rejected", {"partner": partner, "reason": reason})


def assigned(partner, ally, start, end, previous=None):
    data = {"partner": partner, "ally": ally}
    if previous:
        data["previous"] = previous
    data.update({"term_start": start, "term_end": end})
    return ("assigned", data)


def vacant(partner, since, candidate=None):
    data = {"partner": partner, "since": since}
    if candidate:
        data["candidate"] = candidate
    return ("vacant", data)


def ended(partner, ally, reason):
    return ("ended", {"partner": partner, "ally": ally, "reason": reason})


def expiring(partner, ally, term_end, days_left):
    return ("term_expiring", {"partner": partner, "ally": ally,
                              "term_end": term_end, "days_left": days_left})


# ---------------------------------------------------------------------------
# The story on one log


def story(res, args):
    c = Cluster(args, "story")
    try:
        def registration():
            c.tick(ms("2025-01-01"))
            for a in ("FRA", "DEU", "USA", "ITA"):
                c.ally(a)
            c.volunteer("SWE", "FIN")      # not an Ally: passed over
            c.volunteer("USA", "FIN")
            c.volunteer("DEU", "FIN")
            c.volunteer("USA", "FIN")      # again: keeps its rank
            c.partner("FIN")
            c.partner("JPN", "PATG")
            c.partner("CHN", "DIALOGUE")
            c.partner("RUS", "EAPC", "suspended")
            c.expect(vacant("FIN", ms("2025-01-01"), "USA"),
                     vacant("JPN", ms("2025-01-01")))

        def upsert_no_change():
            c.partner("FIN")
            c.partner("CHN", "DIALOGUE")
            c.expect()

        def unknown_partner():
            c.handover("XXX", "FRA", "p-none", "2025-01-01")
            c.expect(rejected("XXX", "unknown_partner"))

        def not_eligible():
            c.handover("CHN", "FRA", "p-none", "2025-01-01")
            c.handover("RUS", "FRA", "p-none", "2025-01-01")
            c.expect(rejected("CHN", "not_eligible"),
                     rejected("RUS", "not_eligible"))

        def not_an_ally():
            c.handover("FIN", "SWE", "p-none", "2025-01-01")
            c.handover("FIN", "JPN", "p-none", "2025-01-01")
            c.expect(rejected("FIN", "not_an_ally"),
                     rejected("FIN", "not_an_ally"))

        def decision_mismatch():
            c.handover("FIN", "FRA", "p-none", "2025-01-01")   # no such
            c.adopt("p-jpn", "JPN", "FRA")
            c.handover("FIN", "FRA", "p-jpn", "2025-01-01")    # partner
            c.handover("JPN", "DEU", "p-jpn", "2025-01-01")    # ally
            c.expect(rejected("FIN", "decision_mismatch"),
                     rejected("FIN", "decision_mismatch"),
                     rejected("JPN", "decision_mismatch"))
            # A decision of another kind, adopted, naming this partner
            c.programme("p-prog", "FIN")
            c.meeting("p-prog")
            c.handover("FIN", "FRA", "p-prog", "2025-01-01")   # kind
            c.expect(rejected("FIN", "decision_mismatch"))
            assert ("notify.nac.adopted", {
                "proposal": "p-prog", "action": {
                    "kind": "programme.open", "partner": "FIN",
                    "programme": "PARP"}, "adopted_at": ms("2025-01-01")}) \
                in c.nac_notes(), "p-prog was not adopted"

        def waits_for_adoption():
            c.proposal("p1", "FIN", "FRA")
            c.handover("FIN", "FRA", "p1", "2025-01-01")
            c.handover("FIN", "FRA", "p1", "2025-01-02")   # held back
            c.expect()
            c.meeting("p1")
            c.expect(assigned("FIN", "FRA", "2025-01-01", "2027-01-01"),
                     rejected("FIN", "decision_mismatch"))  # p1 used

        def decision_blocked():
            c.proposal("p2", "FIN", "DEU")
            c.meeting("p2", "not_agreed")
            c.handover("FIN", "DEU", "p2", "2025-02-01")
            c.expect(rejected("FIN", "decision_blocked"))

        def blocked_while_waiting():
            c.proposal("p2b", "FIN", "DEU")
            c.handover("FIN", "DEU", "p2b", "2025-02-01")
            c.expect()
            c.meeting("p2b", "not_agreed")
            c.expect(rejected("FIN", "decision_blocked"))

        def from_mismatch_then_match():
            c.adopt("p3", "FIN", "DEU")
            c.handover("FIN", "DEU", "p3", "2025-03-01", frm="USA")
            c.expect(rejected("FIN", "not_current_holder"))
            c.handover("FIN", "DEU", "p3", "2025-03-01", frm="FRA")
            c.expect(assigned("FIN", "DEU", "2025-03-01", "2027-03-01",
                              previous="FRA"))

        def renew():
            c.adopt("p4", "FIN", "DEU")
            c.handover("FIN", "DEU", "p4", "2025-04-01", frm="DEU")
            c.expect(assigned("FIN", "DEU", "2025-04-01", "2027-04-01",
                              previous="DEU"))

        def leap_day():
            c.adopt("p5", "JPN", "ITA")
            c.handover("JPN", "ITA", "p5", "2024-02-29")
            c.expect(assigned("JPN", "ITA", "2024-02-29", "2026-02-28"))

        def term_expiring_90_days():
            # JPN's term ends 2026-02-28, FIN's 2027-04-01
            c.tick(ms("2025-11-30", -1))            # 90 days - 1 ms before
            c.expect()
            c.tick(ms("2025-11-30"))                # 90 days before
            c.expect(expiring("JPN", "ITA", "2026-02-28", 90))
            c.tick(ms("2025-12-15"))                # once only
            c.expect()

        def term_runs_out():
            c.volunteer("FRA", "JPN")
            c.volunteer("ITA", "JPN")
            c.tick(ms("2026-02-28", -1))
            c.expect()
            c.tick(ms("2026-02-28"))
            c.expect(ended("JPN", "ITA", "term_ended"),
                     vacant("JPN", ms("2026-02-28"), "FRA"))

        def two_years_in_one_tick():
            # FIN's term (to 2027-04-01): notice and end on one tick
            c.tick(ms("2027-06-01"))
            c.expect(expiring("FIN", "DEU", "2027-04-01", 0),
                     ended("FIN", "DEU", "term_ended"),
                     vacant("FIN", ms("2027-04-01"), "USA"))

        def volunteer_taken_up():
            c.adopt("p6", "FIN", "USA")
            c.handover("FIN", "USA", "p6", "2027-06-01")
            c.expect(assigned("FIN", "USA", "2027-06-01", "2029-06-01"))

        def suspension_then_reactivation():
            c.partner("FIN", "EAPC", "suspended")
            c.expect(ended("FIN", "USA", "suspended"))
            c.tick(ms("2027-07-01"))
            c.volunteer("ITA", "FIN")   # USA and DEU were taken up
            c.partner("FIN", "EAPC", "active")
            c.expect(vacant("FIN", ms("2027-07-01"), "ITA"))

        def accession():
            c.adopt("p7", "JPN", "FRA")
            c.handover("JPN", "FRA", "p7", "2027-07-01")
            c.expect(assigned("JPN", "FRA", "2027-07-01", "2029-07-01"))
            c.pub("nac.proposal", {
                "proposal": "acc-jpn", "procedure": "meeting",
                "action": {"kind": "accession", "country": "JPN",
                           "effective": "2027-08-01"}})
            c.meeting("acc-jpn")
            c.expect(ended("JPN", "FRA", "accession"))
            # No longer a host, and an Ally now: FIN's CPE may be Japan's
            c.adopt("p8", "JPN", "ITA")       # refused by the Council
            c.handover("JPN", "ITA", "p8", "2027-08-01")
            c.adopt("p9", "FIN", "JPN")
            c.handover("FIN", "JPN", "p9", "2027-08-01")
            c.expect(rejected("JPN", "not_eligible"),
                     assigned("FIN", "JPN", "2027-08-01", "2029-08-01"))
            c.tick(ms("2030-01-01"))
            c.expect(expiring("FIN", "JPN", "2029-08-01", 0),
                     ended("FIN", "JPN", "term_ended"),
                     vacant("FIN", ms("2029-08-01"), "ITA"))

        def quarantine():
            c.adopt("p10", "FIN", "DEU")
            seq = c.handover("FIN", "DEU", "p10", "9998-06-01")
            got = c.take()
            assert len(got) == 1 and got[0][0] == "quarantined", got
            assert got[0][1]["seq"] == seq, (seq, got)
            assert got[0][1]["type"] == "cpe.handover", got
            assert "9999-12-31" in got[0][1]["reason"], got

        def crash_restart():
            c.quiet()
            c.cpe.kill9()
            c.handover("FIN", "DEU", "p10", "2030-01-01")
            c.tick(ms("2030-02-01"))
            c.cpe.start()
            c.expect(assigned("FIN", "DEU", "2030-01-01", "2032-01-01"))
            system.check_no_duplicate_notifications(
                system.notifications(c.journal))

        def rebuild_is_identical():
            head = c.quiet()
            notes_before = c.cpe_notes()
            assert c.cpe.term() == 0, "pb-cpe did not stop cleanly"
            live = c.cpe.dump()
            fresh = system.Worker("cpe", c.cpe_bin, c.journal)
            try:
                fresh.start()
                system.wait_applied(fresh, head, timeout=30)
                c.quiet()
                assert fresh.term() == 0, "rebuilt pb-cpe did not stop"
                rebuilt = fresh.dump()
            finally:
                fresh.close()
            assert live == rebuilt, system.dump_diff(live, rebuilt)
            assert b"state proposal/p1 " in live and b"state volunteer/" in live
            assert c.cpe_notes() == notes_before, \
                "the rebuild logged notifications again"

        for label, fn in [
                ("registration makes eligible partners vacant", registration),
                ("an upsert that changes nothing yields nothing",
                 upsert_no_change),
                ("unknown_partner", unknown_partner),
                ("not_eligible (DIALOGUE, suspended)", not_eligible),
                ("not_an_ally", not_an_ally),
                ("decision_mismatch (absent, other partner, other ally, "
                 "other kind)", decision_mismatch),
                ("a handover waits for its decision, holds back the next",
                 waits_for_adoption),
                ("decision_blocked", decision_blocked),
                ("decision_blocked while waiting", blocked_while_waiting),
                ("from: not_current_holder, then the holder",
                 from_mismatch_then_match),
                ("renewal by a handover to the holder", renew),
                ("29 February plus two years is 28 February", leap_day),
                ("term_expiring at 90 days, once", term_expiring_90_days),
                ("a term runs out: ended, then vacant with candidate",
                 term_runs_out),
                ("one tick past notice and end: both, notice first",
                 two_years_in_one_tick),
                ("a volunteer assigned stops standing", volunteer_taken_up),
                ("suspension ends, re-activation is vacant",
                 suspension_then_reactivation),
                ("accession ends the CPE; the country is an Ally",
                 accession),
                ("a term past 9999-12-31 is quarantined", quarantine),
                ("kill -9 and restart: applied once", crash_restart),
                ("rebuild from the log: --dump byte-identical",
                 rebuild_is_identical)]:
            res.run(label, fn)
    finally:
        c.close()


# ---------------------------------------------------------------------------
# Arrival before or after the decision: the same outcome


def before_after(args):
    def run(name, early):
        c = Cluster(args, name)
        try:
            c.tick(ms("2025-01-01"))
            c.ally("FRA")
            c.partner("NZL", "PATG")
            c.proposal("p1", "NZL", "FRA")
            if early:
                c.handover("NZL", "FRA", "p1", "2025-05-05")
                c.meeting("p1")
            else:
                c.meeting("p1")
                c.quiet()                # the adoption is in the log
                c.handover("NZL", "FRA", "p1", "2025-05-05")
            c.quiet()
            notes = c.cpe_notes()
            log, _ = pbtest.full_log(c.journal)
            adopted = [e[0] for e in log if e[1] == "notify.nac.adopted"]
            handover = [e[0] for e in log if e[1] == "cpe.handover"]
            assert adopted and handover
            assert (handover[0] < adopted[0]) == early, (handover, adopted)
            return [(n["type"], n["data"]) for n in notes]
        finally:
            c.close()
    early = run("early", True)
    late = run("late", False)
    assert early == late, "early %r\n   late %r" % (early, late)
    assert early[-1] == ("notify.cpe.assigned", {
        "partner": "NZL", "ally": "FRA", "term_start": "2025-05-05",
        "term_end": "2027-05-05"}), early


# ---------------------------------------------------------------------------
# Waiting on a proposal the Council then refuses as invalid_action


def invalid_while_waiting(args):
    c = Cluster(args, "invalid", nac=False)
    try:
        c.tick(ms("2025-01-01"))
        c.ally("FRA")
        c.partner("NZL", "PATG", "suspended")
        c.proposal("p1", "NZL", "FRA")         # invalid: NZL suspended
        c.partner("NZL", "PATG", "active")
        c.handover("NZL", "FRA", "p1", "2025-05-05")
        c.expect(vacant("NZL", ms("2025-01-01")))    # and it waits
        c.start_nac()
        c.expect(rejected("NZL", "decision_mismatch"))
        log, _ = pbtest.full_log(c.journal)
        nac = [(e[1], e[2]["data"]) for e in log
               if e[1].startswith("notify.nac.")]
        assert nac == [("notify.nac.rejected",
                        {"proposal": "p1", "reason": "invalid_action"})], nac
    finally:
        c.close()


# ---------------------------------------------------------------------------
# The decision is the FIRST nac.proposal of its id: a later duplicate, which
# the Council refuses, changes nothing, whatever its action


def first_proposal_wins(args):
    c = Cluster(args, "first")
    try:
        c.tick(ms("2025-01-01"))
        c.ally("FRA")
        c.ally("DEU")
        c.partner("NZL", "PATG")
        c.expect(vacant("NZL", ms("2025-01-01")))
        # p1 names FRA; a duplicate p1 names DEU
        c.proposal("p1", "NZL", "FRA")
        c.proposal("p1", "NZL", "DEU")
        c.handover("NZL", "DEU", "p1", "2025-05-05")
        c.expect(rejected("NZL", "decision_mismatch"))
        c.handover("NZL", "FRA", "p1", "2025-05-05")
        c.expect()                                  # waits for p1
        c.meeting("p1")
        c.expect(assigned("NZL", "FRA", "2025-05-05", "2027-05-05"))
        # p2 names DEU; a duplicate lands while the handover waits
        c.proposal("p2", "NZL", "DEU")
        c.handover("NZL", "DEU", "p2", "2025-06-01")
        c.proposal("p2", "NZL", "FRA")
        c.expect()
        c.meeting("p2")
        c.expect(assigned("NZL", "DEU", "2025-06-01", "2027-06-01",
                          previous="FRA"))
        # p3 is of another kind; its duplicate is a cpe.assign for NZL, DEU
        c.programme("p3", "NZL")
        c.proposal("p3", "NZL", "DEU")
        c.meeting("p3")
        c.handover("NZL", "DEU", "p3", "2025-07-01")
        c.expect(rejected("NZL", "decision_mismatch"))
        # The Council's view agrees: each duplicate refused, the first
        # proposal of each id adopted with its own action
        assert c.nac_notes() == [
            ("notify.nac.rejected", {"proposal": "p1",
                                     "reason": "duplicate_proposal"}),
            ("notify.nac.adopted", {"proposal": "p1", "action": {
                "kind": "cpe.assign", "partner": "NZL", "ally": "FRA"},
                "adopted_at": ms("2025-01-01")}),
            ("notify.nac.rejected", {"proposal": "p2",
                                     "reason": "duplicate_proposal"}),
            ("notify.nac.adopted", {"proposal": "p2", "action": {
                "kind": "cpe.assign", "partner": "NZL", "ally": "DEU"},
                "adopted_at": ms("2025-01-01")}),
            ("notify.nac.rejected", {"proposal": "p3",
                                     "reason": "duplicate_proposal"}),
            ("notify.nac.adopted", {"proposal": "p3", "action": {
                "kind": "programme.open", "partner": "NZL",
                "programme": "PARP"}, "adopted_at": ms("2025-01-01")})]
    finally:
        c.close()


def main():
    args = pbtest.parse_args()
    res = pbtest.Results("it_cpe")
    story(res, args)
    res.run("a handover before its adoption ends as one after",
            before_after, args)
    res.run("waiting on a proposal refused as invalid_action: "
            "decision_mismatch", invalid_while_waiting, args)
    res.run("the first nac.proposal of an id is the decision, not a "
            "later duplicate (other Ally, other kind)",
            first_proposal_wins, args)
    res.finish()


if __name__ == "__main__":
    main()
