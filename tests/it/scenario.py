"""scenario - a deterministic, seeded generator of a realistic event mix

Produces the upstream side of partnerbus's world (EVENTS.md) as a list of
steps, each either

    ("event", type, data)   publish this upstream event on ingest
    ("tick", now)           TICK {now} on the control socket (manual clock)

The same (seed, count) always yields the same list, byte for byte.

It starts with the reference data (the Allies, the partners with their
frameworks and profiles, the policy, and the accessions of Finland and
Sweden), then mixes every upstream type the way a partnership office
would see them, with a loose model of the state to aim at every outcome
the rules distinguish:

  - proposals of all six action kinds under both procedures, positions
    (concur, object, objections withdrawn by a later concur, positions of
    non-Allies), meetings agreed and not agreed, silence kept and broken,
    and the refusals: invalid action, duplicate id, standing objection,
    unknown proposal, already decided, wrong procedure;
  - cpe.volunteer and cpe.handover, some sent before the Council adopts
    their decision (they wait), some invalid in each of the six ways;
  - activities with feedback (good and bad streaks, so discard candidates
    come and go), feedback on closed and unknown activities, short review
    periods (review_due), policy and profile changes (priority scores);
  - registry upserts: profile changes, suspensions and reactivations of
    partners holding a CPE, and upserts that change nothing; they and
    the policy changes come with time (per simulated day), not with
    traffic, and at most MAX_OPEN activities are open (older ones are
    retired by the Council), so a long log keeps a realistic ratio of
    notifications to events;
  - time: ticks of one to three days, so two-year CPE terms expire (notice,
    end, vacancy) several times over;
  - what the rules must quarantine (ev_edge, ev_activity_again): a
    second registration of an activity id, a handover effective
    9999-12-31, a proposal blocked by 65 objectors.

The generator's model is approximate on purpose: the workers' notifications
land in the log among these events, and the rules, not this file, decide
the outcomes. Tests assert on what the workers derived, not on this model.

Run it alone to see the mix:  /usr/bin/python3 scenario.py --count 20000
"""

import argparse
import collections
import datetime
import heapq
import json
import os
import random
import re

DAY_MS = 86400000

ALLIES = [
    ("ALB", "Albania", "2009-04-01"), ("BEL", "Belgium", "1949-04-04"),
    ("BGR", "Bulgaria", "2004-03-29"), ("CAN", "Canada", "1949-04-04"),
    ("HRV", "Croatia", "2009-04-01"), ("CZE", "Czechia", "1999-03-12"),
    ("DNK", "Denmark", "1949-04-04"), ("EST", "Estonia", "2004-03-29"),
    ("FRA", "France", "1949-04-04"), ("DEU", "Germany", "1955-05-09"),
    ("GRC", "Greece", "1952-02-18"), ("HUN", "Hungary", "1999-03-12"),
    ("ISL", "Iceland", "1949-04-04"), ("ITA", "Italy", "1949-04-04"),
    ("LVA", "Latvia", "2004-03-29"), ("LTU", "Lithuania", "2004-03-29"),
    ("LUX", "Luxembourg", "1949-04-04"), ("MNE", "Montenegro", "2017-06-05"),
    ("NLD", "Netherlands", "1949-04-04"),
    ("MKD", "North Macedonia", "2020-03-27"),
    ("NOR", "Norway", "1949-04-04"), ("POL", "Poland", "1999-03-12"),
    ("PRT", "Portugal", "1949-04-04"), ("ROU", "Romania", "2004-03-29"),
    ("SVK", "Slovakia", "2004-03-29"), ("SVN", "Slovenia", "2004-03-29"),
    ("ESP", "Spain", "1982-05-30"), ("TUR", "T\u00fcrkiye", "1952-02-18"),
    ("GBR", "United Kingdom", "1949-04-04"),
    ("USA", "United States", "1949-04-04"),
]

#  (code, name, frameworks, status)
PARTNERS = [
    ("ARM", "Armenia", ["EAPC", "PFP"], "active"),
    ("AUT", "Austria", ["EAPC", "PFP"], "active"),
    ("AZE", "Azerbaijan", ["EAPC", "PFP"], "active"),
    ("BLR", "Belarus", ["EAPC", "PFP"], "suspended"),
    ("BIH", "Bosnia and Herzegovina", ["EAPC", "PFP"], "active"),
    ("FIN", "Finland", ["EAPC", "PFP"], "active"),
    ("GEO", "Georgia", ["EAPC", "PFP"], "active"),
    ("IRL", "Ireland", ["EAPC", "PFP"], "active"),
    ("KAZ", "Kazakhstan", ["EAPC", "PFP"], "active"),
    ("KGZ", "Kyrgyz Republic", ["EAPC", "PFP"], "active"),
    ("MLT", "Malta", ["EAPC", "PFP"], "active"),
    ("MDA", "Moldova", ["EAPC", "PFP"], "active"),
    ("RUS", "Russia", ["EAPC", "PFP"], "suspended"),
    ("SRB", "Serbia", ["EAPC", "PFP"], "active"),
    ("SWE", "Sweden", ["EAPC", "PFP"], "active"),
    ("CHE", "Switzerland", ["EAPC", "PFP"], "active"),
    ("TJK", "Tajikistan", ["EAPC", "PFP"], "active"),
    ("TKM", "Turkmenistan", ["EAPC", "PFP"], "active"),
    ("UKR", "Ukraine", ["EAPC", "PFP"], "active"),
    ("UZB", "Uzbekistan", ["EAPC", "PFP"], "active"),
    ("DZA", "Algeria", ["MD"], "active"),
    ("EGY", "Egypt", ["MD"], "active"),
    ("ISR", "Israel", ["MD"], "active"),
    ("JOR", "Jordan", ["MD"], "active"),
    ("MRT", "Mauritania", ["MD"], "active"),
    ("MAR", "Morocco", ["MD"], "active"),
    ("TUN", "Tunisia", ["MD"], "active"),
    ("BHR", "Bahrain", ["ICI"], "active"),
    ("KWT", "Kuwait", ["ICI"], "active"),
    ("QAT", "Qatar", ["ICI"], "active"),
    ("ARE", "United Arab Emirates", ["ICI"], "active"),
    ("AFG", "Afghanistan", ["PATG"], "suspended"),
    ("AUS", "Australia", ["PATG"], "active"),
    ("COL", "Colombia", ["PATG"], "active"),
    ("IRQ", "Iraq", ["PATG"], "active"),
    ("JPN", "Japan", ["PATG"], "active"),
    ("KOR", "Republic of Korea", ["PATG"], "active"),
    ("MNG", "Mongolia", ["PATG"], "active"),
    ("NZL", "New Zealand", ["PATG"], "active"),
    ("PAK", "Pakistan", ["PATG"], "active"),
    ("CHN", "China", ["DIALOGUE"], "active"),
    ("IND", "India", ["DIALOGUE"], "active"),
    ("IDN", "Indonesia", ["DIALOGUE"], "active"),
    ("MYS", "Malaysia", ["DIALOGUE"], "active"),
    ("SGP", "Singapore", ["DIALOGUE"], "active"),
]

ACCESSIONS = [("FIN", "2023-04-04"), ("SWE", "2024-03-07")]

PROFILE_KEYS = ["aspires_membership", "shares_values", "supports_operations",
                "strategic_importance", "bilateral_framework",
                "finances_activities"]
CONSIDERATIONS = PROFILE_KEYS + ["priority_area"]
AREAS = ["political_consultation", "operations", "defence_reform",
         "interoperability", "counter_terrorism", "counter_proliferation",
         "emerging_security_challenges", "civil_emergency_planning", "other"]
TOOLS = ["PCM", "IPCP", "IPAP", "PARP", "SPS", "TRUST_FUND"]
STAFF_UNITS = ["PASP", "IS-PDD", "IMS-CPP", "ACT-PE", "SHAPE-J7"]
UNKNOWN_COUNTRIES = ["XKX", "ZZZ", "QQQ"]

#  Every notification type of EVENTS.md (the catalogue's notify.* types)
NOTIFICATION_TYPES = [
    "notify.nac.rejected", "notify.nac.adopted", "notify.nac.blocked",
    "notify.nac.silence_broken", "notify.nac.quarantined",
    "notify.cpe.assigned", "notify.cpe.term_expiring", "notify.cpe.ended",
    "notify.cpe.vacant", "notify.cpe.rejected", "notify.cpe.quarantined",
    "notify.activity.discard_candidate", "notify.activity.review_due",
    "notify.activity.priority", "notify.activity.opened",
    "notify.activity.discarded", "notify.activity.rejected",
    "notify.activity.quarantined", "notify.partner.access_changed",
    "notify.consultation.convened",
]

UPSTREAM_TYPES = [
    "registry.ally", "registry.partner", "registry.policy", "nac.proposal",
    "nac.position", "nac.meeting", "cpe.volunteer", "cpe.handover",
    "activity.registered", "activity.feedback",
]

#  proto/pb_catalogue.def, THE list of event types (read by catalogue())
CATALOGUE_DEF = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                             os.pardir, os.pardir, "proto", "pb_catalogue.def")

#  The non-notification types of the catalogue a scenario cannot put in
#  the log, and why. Every other one (the upstream types, and sys.tick,
#  which the journal appends for each TICK step) a long scenario must
#  produce: it_determinism asserts it against the live log. (sys.heartbeat
#  is no catalogue type: the journal sends it on fanout, never logs it.)
NOT_GENERATED = {
    "ops.redrive": "an operator's pbctl quarantine redrive (it_pbctl_ops)",
    "ops.rebuild": "an operator's pbctl rebuild (it_pbctl_ops)",
    "ops.swap": "an operator's pbctl rebuild --swap (it_pbctl_ops)",
    "ops.import": "an operator's pbctl import (it_pbctl_ops)",
    "ops.replay": "an operator's pbctl replay --to (it_pbctl_ops)",
}


def catalogue(path=CATALOGUE_DEF):
    """[(type, owner)] of every PB_TYPE of proto/pb_catalogue.def, in its
    order; owner None for an upstream type."""
    types = []
    with open(path, encoding="utf-8") as f:
        for m in re.finditer(r'^PB_TYPE \("([^"]+)", (NULL|"([^"]*)")',
                             f.read(), re.M):
            types.append((m.group(1), m.group(3)))
    if not types:
        raise RuntimeError("no PB_TYPE in %s" % path)
    return types


def generated_types(path=CATALOGUE_DEF):
    """The catalogue's non-notification types a scenario must put in the
    log: all but NOT_GENERATED. Raises if NOT_GENERATED names a type the
    catalogue lacks (a stale exclusion hides nothing)."""
    types = [t for t, _ in catalogue(path) if not t.startswith("notify.")]
    stale = set(NOT_GENERATED) - set(types)
    if stale:
        raise RuntimeError("NOT_GENERATED names types not in the "
                           "catalogue: %s" % ", ".join(sorted(stale)))
    return [t for t in types if t not in NOT_GENERATED]


#  The producer (envelope src) of each upstream family
SOURCES = {"registry": "refdata", "nac": "council", "cpe": "cpe-desk",
           "activity": "pcm"}

START_MS = 1672531200000                # 2023-01-01T00:00:00Z
MAX_OPEN = 2000                         # open activities, at most (about)


def date_of(ms):
    return datetime.datetime.fromtimestamp(
        ms // 1000, datetime.timezone.utc).strftime("%Y-%m-%d")


def load_reference(path):
    """The reference data of deploy/registry.jsonl as (type, data) pairs,
    or None when the file is absent. Each line is a JSON object with
    'type' and 'data' (an envelope or a bare event)."""
    if not path or not os.path.isfile(path):
        return None
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            obj = json.loads(line)
            out.append((obj["type"], obj["data"]))
    return out


class Scenario:
    """Build with Scenario(seed, count).steps: count steps at least (the
    reference data included), deterministic in (seed, count, reference).

    With 'edge' the scenario also carries values the rules cannot
    represent (a CPE handover effective in year 9999, whose two-year term
    has no valid date), which a worker must quarantine, not crash on."""

    def __init__(self, seed=1, count=20000, reference=None, edge=True,
                 tick_weight=7.0, tick_ms=None):
        self.rng = random.Random(seed)
        self.tick_weight = tick_weight
        self.tick_ms = tick_ms
        self.count = count
        self.steps = []
        self.now = START_MS
        self.n_ids = collections.Counter()
        self.allies = set()
        self.partners = {}          # code -> {frameworks, status, profile}
        self.activities = {}        # id -> {"open": bool, "bad": bool}
        self.proposals = {}         # id -> model
        self.schedule = []          # heap of (due step, order, fn)
        self.deadlines = []         # heap of (silence deadline, pid)
        self.open_list = []         # activity ids, oldest first (lazy)
        self.closed_list = []       # discarded activity ids
        self.proposal_ids = []      # every proposal id, in order
        self.order = 0
        self.holder = {}            # partner -> predicted CPE holder
        self.assign_ready = []      # adopted cpe.assign ids not yet used
        self.used_decisions = []
        self.blocked_assign = []
        self.edge = edge
        self.ready = False
        self._reference(reference)
        self.ready = True
        self._run()

    # -- output ------------------------------------------------------------

    def emit(self, type_, data):
        self.steps.append(("event", type_, data))

    def tick(self, days=None):
        if days is None and self.tick_ms:
            #  Log time at a live service's pace: a fixed step, no jitter
            days = self.tick_ms / DAY_MS
            self.now += self.tick_ms
        else:
            if days is None:
                days = self.rng.choice([1, 1, 1, 2, 2, 3])
            self.now += days * DAY_MS + self.rng.randrange(0, 3600000)
        self.steps.append(("tick", self.now))
        self.deadlines_due()
        #  Reference data moves with time, not with traffic: a policy
        #  change rescores every open activity, a profile change every
        #  activity of that partner
        if self.ready and days:
            if self.rng.random() < 0.2 * days:
                self.ev_registry_upsert()
            if self.rng.random() < 0.004 * days:
                self.ev_policy()

    def later(self, steps, fn):
        self.order += 1
        heapq.heappush(self.schedule,
                       (len(self.steps) + steps, self.order, fn))

    def new_id(self, prefix):
        self.n_ids[prefix] += 1
        return "%s-%d" % (prefix, self.n_ids[prefix])

    # -- model helpers -----------------------------------------------------

    def eligible(self):
        return sorted(c for c, p in self.partners.items()
                      if p["status"] == "active"
                      and "DIALOGUE" not in p["frameworks"]
                      and c not in self.allies)

    def non_ally_partners(self):
        return sorted(c for c in self.partners if c not in self.allies)

    def open_activities(self):
        """Open activity ids, oldest first (the list drops closed ones
        lazily)."""
        if len(self.open_list) > 2 * (len(self.activities)
                                      - len(self.closed_list)) + 16:
            self.open_list = [a for a in self.open_list
                              if self.activities[a]["open"]]
        return self.open_list

    def pick_open(self, recent=False):
        """An open activity (recent ones more often), or None."""
        opened = self.open_activities()
        for _ in range(20):
            if not opened:
                return None
            if recent:
                i = len(opened) - 1 - min(int(self.rng.expovariate(0.05)),
                                          len(opened) - 1)
            else:
                i = self.rng.randrange(len(opened))
            if self.activities[opened[i]]["open"]:
                return opened[i]
        self.open_list = [a for a in self.open_list
                          if self.activities[a]["open"]]
        return self.open_list[-1] if self.open_list else None

    def pick_allies(self, n):
        return self.rng.sample(sorted(self.allies), n)

    def profile(self):
        return {k: self.rng.random() < 0.5 for k in PROFILE_KEYS}

    # -- reference data ----------------------------------------------------

    def _reference(self, reference):
        self.tick(0)
        if reference:
            for type_, data in reference:
                self.emit(type_, data)
                if type_ == "registry.ally":
                    self.allies.add(data["country"])
                elif type_ == "registry.partner":
                    self.partners[data["country"]] = {
                        "frameworks": list(data["frameworks"]),
                        "status": data["status"],
                        "profile": data.get("profile")}
        else:
            for code, name, joined in ALLIES:
                self.emit("registry.ally", {"country": code, "name": name,
                                            "joined": joined})
                self.allies.add(code)
            for code, name, frameworks, status in PARTNERS:
                data = {"country": code, "name": name,
                        "frameworks": frameworks, "status": status}
                if "DIALOGUE" not in frameworks:
                    data["profile"] = self.profile()
                    data["programmes"] = self.rng.sample(
                        ["IPCP", "IPAP", "PARP", "ITCP"],
                        self.rng.randrange(0, 3))
                self.emit("registry.partner", data)
                self.partners[code] = {"frameworks": frameworks,
                                       "status": status,
                                       "profile": data.get("profile")}
            self.emit("registry.policy", {"discard_below": 2.5,
                                          "discard_min_feedbacks": 3,
                                          "expiry_notice_days": 90})
        #  The two accessions, adopted at a meeting (unless the reference
        #  data already carried them)
        for code, effective in ACCESSIONS:
            if code in self.allies:
                continue
            pid = self.new_id("ACC")
            self.emit("nac.proposal", {
                "proposal": pid, "procedure": "meeting",
                "action": {"kind": "accession", "country": code,
                           "effective": effective}})
            for ally in self.pick_allies(3):
                self.emit("nac.position", {"proposal": pid, "ally": ally,
                                           "position": "concur"})
            self.emit("nac.meeting", {"proposal": pid, "outcome": "agreed"})
            self.allies.add(code)
        self.tick(1)

    # -- the mix -----------------------------------------------------------

    def _run(self):
        kinds = [
            (self.ev_feedback, 34), (self.ev_proposal, 9),
            (self.ev_position_noise, 2), (self.ev_activity, 5),
            (self.ev_volunteer, 2), (self.ev_handover_noise, 1.5),
            (self.ev_feedback_noise, 0.8), (self.ev_meeting_noise, 0.8),
            (self.ev_activity_again, 0.02),
            (self.tick, self.tick_weight),
        ]
        fns = [k[0] for k in kinds]
        weights = [k[1] for k in kinds]
        for _ in range(8):
            self.ev_activity()
        edge_at = self.count * 9 // 10
        while len(self.steps) < self.count or self.schedule:
            while self.schedule and self.schedule[0][0] <= len(self.steps):
                _, _, fn = heapq.heappop(self.schedule)
                fn()
            if len(self.steps) >= self.count:
                #  What is planned happens now, in its order, with time
                #  passing now and then
                while self.schedule:
                    _, _, fn = heapq.heappop(self.schedule)
                    fn()
                    if self.rng.random() < 0.05:
                        self.tick()
                continue
            if self.edge and len(self.steps) >= edge_at:
                self.edge = False
                self.ev_edge()
            self.rng.choices(fns, weights)[0]()
        #  Finally, two years and a half of quiet days: every term, review
        #  period and silence deadline still running comes due (not at a
        #  live pace, where time passes as it would)
        for _ in range(0 if self.tick_ms else 30):
            self.tick(30)

    # -- activities and feedback -------------------------------------------

    def ev_activity(self):
        if len(self.activities) - len(self.closed_list) >= MAX_OPEN:
            #  A menu of a couple of thousand activities, as the real one:
            #  a new one replaces an old one (retired by the Council)
            old = self.pick_open()
            if old is not None:
                return self.propose({"kind": "activity.discard",
                                     "activity": old}, plan="adopt")
        aid = self.new_id("ACT")
        pool = self.non_ally_partners()
        partners = self.rng.sample(pool, self.rng.randrange(0, 4))
        if self.rng.random() < 0.1:     # Allies and dialogue countries too
            partners.append(self.rng.choice(sorted(self.allies)))
        data = {"activity": aid,
                "title": "Course %s on %s" % (aid, self.rng.choice(AREAS)),
                "area": self.rng.choice(AREAS),
                "tool": self.rng.choice(TOOLS),
                "partners": sorted(set(partners))}
        r = self.rng.random()
        if r < 0.03:
            data["review_every_days"] = self.rng.choice([90, 180])
        elif r < 0.13:
            data["review_every_days"] = 730
        self.emit("activity.registered", data)
        self.activities[aid] = {"open": True,
                                "bad": self.rng.random() < 0.25}
        self.open_list.append(aid)

    def ev_activity_again(self):
        """A second activity.registered for an id already used: the
        activity worker quarantines it (its documented choice)."""
        if not self.activities:
            return self.ev_activity()
        aid = self.rng.choice(sorted(self.activities))
        self.emit("activity.registered", {
            "activity": aid, "title": "Course %s (again)" % aid,
            "area": "other", "tool": "PCM", "partners": []})

    def ev_feedback(self):
        #  Recent activities get more feedback
        aid = self.pick_open(recent=True)
        if aid is None:
            return self.ev_activity()
        self.feedback(aid)

    def feedback(self, aid):
        model = self.activities.get(aid, {"bad": False})
        if model["bad"] and self.rng.random() < 0.85:
            rel = self.rng.choice([1, 1, 2, 2, 3])
        else:
            rel = self.rng.choice([2, 3, 4, 4, 5, 5])
        if self.rng.random() < 0.03:     # a streak ends or begins
            model["bad"] = not model["bad"]
        frm = self.rng.choice(STAFF_UNITS + self.non_ally_partners()[:10])
        data = {"activity": aid, "from": frm, "relevance": rel,
                "effectiveness": self.rng.randrange(1, 6)}
        if self.rng.random() < 0.2:
            data["comment"] = "Session %d: %s" % (
                self.rng.randrange(1000),
                self.rng.choice(["useful", "too long", "well organised",
                                 "needs follow-up", "off topic"]))
        self.emit("activity.feedback", data)

    def ev_feedback_noise(self):
        closed = self.closed_list
        if closed and self.rng.random() < 0.6:
            self.feedback(self.rng.choice(closed))
        else:
            self.feedback("NOACT-%d" % self.rng.randrange(100000))

    # -- the Council -------------------------------------------------------

    def make_action(self):
        """A valid action (by the model), its kind and a callback run when
        the generator expects its adoption."""
        kind = self.rng.choices(
            ["cpe.assign", "activity.open", "programme.open",
             "consultation.convene", "activity.discard", "accession"],
            [30, 20, 12, 12, 10, 0.4])[0]
        if kind == "accession" and len(self.eligible()) < 12:
            kind = "cpe.assign"
        if kind == "cpe.assign":
            elig = self.eligible()
            if not elig:
                kind = "consultation.convene"
            else:
                partner = self.rng.choice(elig)
                ally = self.rng.choice(sorted(self.allies))
                return {"kind": kind, "partner": partner, "ally": ally}
        if kind in ("activity.open", "activity.discard"):
            chosen = self.pick_open()
            if chosen is None:
                kind = "consultation.convene"
            elif kind == "activity.open":
                return {"kind": kind, "activity": chosen,
                        "partners": sorted(self.rng.sample(
                            sorted(self.partners), self.rng.randrange(1, 4)))}
            else:
                return {"kind": kind, "activity": chosen}
        if kind == "programme.open":
            return {"kind": kind,
                    "partner": self.rng.choice(self.non_ally_partners()),
                    "programme": self.rng.choice(["IPAP", "PARP"])}
        if kind == "accession":
            #  A partner holding a CPE when there is one (notify.cpe.ended
            #  with reason accession)
            held = sorted(p for p in self.holder if p in self.eligible())
            country = self.rng.choice(held or self.eligible())
            return {"kind": kind, "country": country,
                    "effective": date_of(self.now + 30 * DAY_MS)}
        participants = self.rng.sample(sorted(self.partners),
                                       self.rng.randrange(1, 6))
        return {"kind": "consultation.convene",
                "subject": self.rng.choice([
                    "Black Sea security", "Counter-terrorism cooperation",
                    "Women, peace and security", "Cyber defence",
                    "Climate and security", "Maritime situational awareness"]),
                "participants": sorted(participants)}

    def invalid_action(self):
        r = self.rng.randrange(6)
        dialogue = sorted(c for c, p in self.partners.items()
                          if "DIALOGUE" in p["frameworks"])
        if r == 0 and dialogue:
            return {"kind": "cpe.assign", "partner": self.rng.choice(dialogue),
                    "ally": self.rng.choice(sorted(self.allies))}
        if r == 1:
            return {"kind": "cpe.assign",
                    "partner": self.rng.choice(self.eligible() or ["JPN"]),
                    "ally": self.rng.choice(self.non_ally_partners())}
        if r == 2:
            return {"kind": "programme.open",
                    "partner": self.rng.choice(sorted(self.allies)),
                    "programme": "IPAP"}
        if r == 3:
            return {"kind": "accession",
                    "country": self.rng.choice(sorted(self.allies)),
                    "effective": date_of(self.now)}
        if r == 4:
            return {"kind": "activity.discard",
                    "activity": "NOACT-%d" % self.rng.randrange(100000)}
        return {"kind": "consultation.convene", "subject": "Unknown guests",
                "participants": [self.rng.choice(UNKNOWN_COUNTRIES)]}

    def ev_proposal(self):
        r = self.rng.random()
        if r < 0.05:
            return self.propose(self.invalid_action(), plan="invalid")
        if r < 0.08 and self.proposals:
            #  The same id again, with the same or another action
            pid = self.rng.choice(self.proposal_ids)
            model = self.proposals[pid]
            data = {"proposal": pid, "action": model["action"],
                    "procedure": "meeting"}
            return self.emit("nac.proposal", data)
        self.propose(self.make_action())

    def propose(self, action, plan=None):
        pid = self.new_id("P")
        procedure = "silence" if self.rng.random() < 0.45 else "meeting"
        data = {"proposal": pid, "action": action, "procedure": procedure}
        model = {"action": action, "procedure": procedure, "objectors": set(),
                 "decided": False, "plan": plan}
        if procedure == "silence":
            deadline_days = self.rng.randrange(2, 8)
            data["deadline"] = self.now + deadline_days * DAY_MS
            model["deadline"] = data["deadline"]
        self.proposals[pid] = model
        self.proposal_ids.append(pid)
        self.emit("nac.proposal", data)
        if plan == "invalid":
            #  Positions and a meeting on a refused proposal: unknown to
            #  the Council (it is not open)
            if self.rng.random() < 0.5:
                self.later(self.rng.randrange(1, 20),
                           lambda: self.position(pid, self.pick_allies(1)[0],
                                                 "concur"))
            return
        if plan is None:
            plan = self.rng.choices(["adopt", "block", "object_withdraw",
                                     "standing"], [60, 15, 15, 10])[0]
            model["plan"] = plan
        if action["kind"] == "cpe.assign":
            self.plan_handover(pid, action, plan)
        if procedure == "silence":
            self.plan_silence(pid, model, plan)
        else:
            self.plan_meeting(pid, model, plan)

    def position(self, pid, ally, position, reason=None):
        data = {"proposal": pid, "ally": ally, "position": position}
        if reason:
            data["reason"] = reason
        self.emit("nac.position", data)
        model = self.proposals.get(pid)
        if model is not None and ally in self.allies:
            if position == "object":
                model["objectors"].add(ally)
            else:
                model["objectors"].discard(ally)

    def meeting(self, pid, outcome):
        self.emit("nac.meeting", {"proposal": pid, "outcome": outcome})

    def adopted(self, pid):
        model = self.proposals[pid]
        if model["decided"]:
            return
        model["decided"] = "adopted"
        action = model["action"]
        if action["kind"] == "activity.discard":
            if self.activities[action["activity"]]["open"]:
                self.activities[action["activity"]]["open"] = False
                self.closed_list.append(action["activity"])
        elif action["kind"] == "accession":
            self.allies.add(action["country"])
            self.holder.pop(action["country"], None)

    def blocked(self, pid):
        self.proposals[pid]["decided"] = "blocked"

    def concurs(self, pid, n, span):
        for ally in self.pick_allies(n):
            self.later(self.rng.randrange(0, span),
                       lambda a=ally: self.position(pid, a, "concur"))

    def plan_meeting(self, pid, model, plan):
        span = self.rng.randrange(10, 120)
        self.concurs(pid, self.rng.randrange(0, 5), span)
        if plan == "adopt":
            self.later(span, lambda: (self.meeting(pid, "agreed"),
                                      self.adopted(pid)))
        elif plan == "block":
            objector = self.pick_allies(1)[0]
            self.later(span // 2, lambda: self.position(
                pid, objector, "object", "national caveats"))
            self.later(span, lambda: (self.meeting(pid, "not_agreed"),
                                      self.blocked(pid)))
        elif plan == "object_withdraw":
            objector = self.pick_allies(1)[0]
            self.later(span // 3, lambda: self.position(
                pid, objector, "object", "needs more time"))
            self.later(2 * span // 3,
                       lambda: self.position(pid, objector, "concur"))
            self.later(span, lambda: (self.meeting(pid, "agreed"),
                                      self.adopted(pid)))
        else:   # standing: agreed refused, then not_agreed
            objector = self.pick_allies(1)[0]
            self.later(span // 3, lambda: self.position(
                pid, objector, "object", "opposed"))
            self.later(span, lambda: self.meeting(pid, "agreed"))
            self.later(span + 20, lambda: (self.meeting(pid, "not_agreed"),
                                           self.blocked(pid)))
        self.aftermath(pid, span + 40)

    def plan_silence(self, pid, model, plan):
        self.concurs(pid, self.rng.randrange(0, 3), 5)
        if self.rng.random() < 0.15:
            #  A meeting while silence runs: wrong procedure
            self.later(1, lambda: self.meeting(pid, "agreed"))
        if plan == "adopt":
            #  Adopted by the first tick past the deadline; the model
            #  marks it when it sees the deadline pass
            heapq.heappush(self.deadlines, (model["deadline"], pid))
            self.aftermath(pid, 200)
            return
        objector = self.pick_allies(1)[0]
        self.later(1, lambda: self.position(pid, objector, "object",
                                            "silence broken"))
        span = self.rng.randrange(30, 120)
        if plan == "object_withdraw":
            self.later(span // 2, lambda: self.position(pid, objector,
                                                        "concur"))
            self.later(span, lambda: (self.meeting(pid, "agreed"),
                                      self.adopted(pid)))
        else:
            self.later(span, lambda: (self.meeting(pid, "not_agreed"),
                                      self.blocked(pid)))
        self.aftermath(pid, span + 40)

    def deadlines_due(self):
        while self.deadlines and self.deadlines[0][0] <= self.now:
            _, pid = heapq.heappop(self.deadlines)
            self.adopted(pid)

    def aftermath(self, pid, at):
        """Now and then, something after the decision: already decided."""
        r = self.rng.random()
        if r < 0.05:
            self.later(at, lambda: self.meeting(pid, "agreed"))
        elif r < 0.10:
            self.later(at, lambda: self.position(
                pid, self.pick_allies(1)[0], "object", "too late"))

    def ev_position_noise(self):
        r = self.rng.random()
        recent = self.proposal_ids[-50:]
        open_ = [p for p in recent if not self.proposals[p]["decided"]
                 and self.proposals[p]["plan"] != "invalid"]
        if r < 0.5 and open_:
            #  A non-Ally (partner or unknown) takes a position
            who = self.rng.choice(self.non_ally_partners() + UNKNOWN_COUNTRIES)
            self.position(self.rng.choice(open_), who, "concur")
        elif r < 0.7 and open_:
            #  More concurrences on an open matter
            self.position(self.rng.choice(open_), self.pick_allies(1)[0],
                          "concur")
        else:
            self.position("NOPROP-%d" % self.rng.randrange(100000),
                          self.pick_allies(1)[0], "concur")

    def ev_meeting_noise(self):
        self.meeting("NOPROP-%d" % self.rng.randrange(100000),
                     self.rng.choice(["agreed", "not_agreed"]))

    # -- Contact Point Embassies -------------------------------------------

    def handover(self, pid, action, use_from=None):
        partner, ally = action["partner"], action["ally"]
        data = {"partner": partner, "to": ally, "decision": pid,
                "effective": date_of(self.now)}
        current = self.holder.get(partner)
        if use_from == "right" and current:
            data["from"] = current
        elif use_from == "wrong":
            data["from"] = self.rng.choice(sorted(self.allies - {current}))
        self.emit("cpe.handover", data)
        self.used_decisions.append(pid)
        model = self.proposals.get(pid)
        if model and model["plan"] in ("adopt", "object_withdraw") \
                and use_from != "wrong":
            self.holder[partner] = ally

    def plan_handover(self, pid, action, plan):
        r = self.rng.random()
        use_from = self.rng.choices([None, "right", "wrong"], [60, 30, 10])[0]
        if plan in ("block", "standing") or r < 0.3:
            #  Before the decision: the handover waits for the Council
            self.later(self.rng.randrange(1, 8),
                       lambda: self.handover(pid, action, use_from))
        else:
            self.later(self.rng.randrange(130, 260),
                       lambda: self.handover(pid, action, use_from))

    def ev_volunteer(self):
        partner = self.rng.choice(self.eligible() or ["JPN"])
        self.emit("cpe.volunteer", {"ally": self.rng.choice(sorted(self.allies)),
                                    "partner": partner})

    def ev_handover_noise(self):
        r = self.rng.randrange(5)
        elig = self.eligible()
        ally = self.rng.choice(sorted(self.allies))
        date = date_of(self.now)
        if r == 0:      # unknown partner
            data = {"partner": self.rng.choice(UNKNOWN_COUNTRIES), "to": ally,
                    "decision": "P-1", "effective": date}
        elif r == 1:    # not eligible: dialogue or suspended
            partner = self.rng.choice(sorted(
                c for c, p in self.partners.items()
                if "DIALOGUE" in p["frameworks"] or p["status"] != "active"))
            data = {"partner": partner, "to": ally, "decision": "P-1",
                    "effective": date}
        elif r == 2:    # to a non-Ally
            data = {"partner": self.rng.choice(elig), "to":
                    self.rng.choice(self.non_ally_partners()),
                    "decision": "P-1", "effective": date}
        elif r == 3 and self.used_decisions:    # a decision used already
            pid = self.rng.choice(self.used_decisions)
            action = self.proposals[pid]["action"]
            data = {"partner": action["partner"], "to": action["ally"],
                    "decision": pid, "effective": date}
        else:           # a decision for something else
            data = {"partner": self.rng.choice(elig), "to": ally,
                    "decision": "NOPROP-%d" % self.rng.randrange(100000),
                    "effective": date}
        self.emit("cpe.handover", data)

    # -- registry ----------------------------------------------------------

    def ev_registry_upsert(self):
        code = self.rng.choice(self.non_ally_partners())
        model = self.partners[code]
        name = dict((c, n) for c, n, _, _ in PARTNERS).get(code, code)
        data = {"country": code, "name": name,
                "frameworks": list(model["frameworks"]),
                "status": model["status"]}
        r = self.rng.random()
        if r < 0.25:
            pass                                    # changes nothing
        elif r < 0.55 and "DIALOGUE" not in model["frameworks"]:
            data["profile"] = self.profile()        # priorities move
            model["profile"] = data["profile"]
        elif r < 0.75:
            data["programmes"] = self.rng.sample(
                ["IPCP", "IPAP", "PARP", "ITCP"], self.rng.randrange(0, 4))
        elif "DIALOGUE" not in model["frameworks"] \
                and code not in ("RUS", "BLR", "AFG"):
            #  Suspended for a while (a CPE holder's term ends), then back
            held = sorted(p for p in self.holder if p in self.eligible())
            if held and self.rng.random() < 0.7:
                code = self.rng.choice(held)
                model = self.partners[code]
                data = {"country": code,
                        "name": dict((c, n) for c, n, _, _ in PARTNERS).get(
                            code, code),
                        "frameworks": list(model["frameworks"])}
            data["status"] = "suspended"
            model["status"] = "suspended"
            self.holder.pop(code, None)
            back = dict(data, status="active")

            def reactivate(c=code, d=back):
                self.partners[c]["status"] = "active"
                self.emit("registry.partner", d)
            self.later(self.rng.randrange(50, 400), reactivate)
        self.emit("registry.partner", data)

    def ev_policy(self):
        data = {}
        r = self.rng.random()
        if r < 0.4:
            data["weights"] = {k: self.rng.randrange(0, 101)
                               for k in CONSIDERATIONS}
            data["weights"]["priority_area"] = max(
                1, data["weights"]["priority_area"])
        elif r < 0.7:
            data["discard_below"] = self.rng.choice([2.0, 2.5, 3.0, 3.5])
            data["discard_min_feedbacks"] = self.rng.choice([2, 3, 5])
        else:
            data["expiry_notice_days"] = self.rng.choice([30, 60, 90, 120])
        self.emit("registry.policy", data)

    # -- values the rules cannot represent -----------------------------------

    def ev_edge(self):
        """Values the rules cannot represent, which a worker must
        quarantine and go on:
        - a CPE handover effective 9999-12-31: its term would end in year
          10001, which no DATE can say (notify.cpe.quarantined);
        - a proposal blocked by 65 objectors, where notify.nac.blocked
          lists at most 64 (notify.nac.quarantined): the registry first
          grows to 65 Allies (fictional members XAA, XAB, ...; they stay
          out of the rest of the scenario)."""
        extra = ["X%s%s" % (chr(65 + i // 26), chr(65 + i % 26))
                 for i in range(max(0, 65 - len(self.allies)))]
        for code in extra:
            self.emit("registry.ally", {"country": code,
                                        "name": "Member %s" % code,
                                        "joined": date_of(self.now)})
        pid = self.new_id("P")
        action = {"kind": "consultation.convene", "subject": "Enlargement",
                  "participants": [self.eligible()[0]]}
        self.proposals[pid] = {"action": action, "procedure": "meeting",
                               "objectors": set(), "decided": "blocked",
                               "plan": "edge"}
        self.emit("nac.proposal", {"proposal": pid, "action": action,
                                   "procedure": "meeting"})
        for ally in sorted(self.allies) + extra:
            self.emit("nac.position", {"proposal": pid, "ally": ally,
                                       "position": "object"})
        self.emit("nac.meeting", {"proposal": pid, "outcome": "not_agreed"})
        elig = self.eligible()
        if not elig:
            return
        action = {"kind": "cpe.assign", "partner": elig[0],
                  "ally": sorted(self.allies)[0]}
        pid = self.new_id("P")
        self.proposals[pid] = {"action": action, "procedure": "meeting",
                               "objectors": set(), "decided": "adopted",
                               "plan": "edge"}
        self.emit("nac.proposal", {"proposal": pid, "action": action,
                                   "procedure": "meeting"})
        self.emit("nac.meeting", {"proposal": pid, "outcome": "agreed"})
        self.later(5, lambda: self.emit("cpe.handover", {
            "partner": action["partner"], "to": action["ally"],
            "decision": pid, "effective": "9999-12-31"}))


# ---------------------------------------------------------------------------
# Envelopes


class Envelopes:
    """Turns steps into envelopes with unique ids per src."""

    def __init__(self, prefix="sc"):
        self.prefix = prefix
        self.n = 0

    def envelope(self, type_, data):
        self.n += 1
        src = SOURCES[type_.split(".")[0]]
        return {"id": "%s-%d" % (self.prefix, self.n), "src": src,
                "type": type_, "data": data}


def generate(seed=1, count=20000, reference=None, edge=True,
             tick_weight=7.0, tick_ms=None):
    """The steps of Scenario (seed, count, ...). 'tick_weight' sets how
    often time moves (7: about one step in nine is a tick; a benchmark
    that must not wait on TICK round trips uses less). 'tick_ms': each
    tick moves log time by that much (a live service's pace: the journal
    ticks once a second), instead of one to three days; reference changes
    that come per simulated day become as rare as they are live."""
    return Scenario(seed, count, reference, edge, tick_weight, tick_ms).steps


def mix(steps):
    c = collections.Counter(s[1] if s[0] == "event" else "TICK"
                            for s in steps)
    return c


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--json", action="store_true",
                    help="print the steps as JSON lines")
    args = ap.parse_args()
    steps = generate(args.seed, args.count)
    if args.json:
        for s in steps:
            print(json.dumps(s, ensure_ascii=False, sort_keys=True))
        return
    c = mix(steps)
    for k in UPSTREAM_TYPES + ["TICK"]:
        print("%-22s %7d" % (k, c.get(k, 0)))
    print("%-22s %7d" % ("total", len(steps)))
    print("log time %s .. %s" % (date_of(START_MS), date_of(
        max(s[1] for s in steps if s[0] == "tick"))))


if __name__ == "__main__":
    main()
