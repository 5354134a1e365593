/*  =========================================================================
    pb_registry - a worker's own projection of the reference data

    Every worker keeps the registry events it needs (EVENTS.md, "The
    actors" and "Every worker"): registry.ally, registry.partner (upsert;
    an omitted optional field keeps its stored value), registry.policy
    (thresholds from that point of the log on) and the adopted accessions
    (notify.nac.adopted whose action.kind is accession: the country is an
    Ally from then on, joined = effective). It lives in the worker's state
    database under "reg/" (reg/ally/<C>, reg/partner/<C>, reg/policy),
    read and written through pb_apply_t, so it is part of the worker's
    exactly-once transaction. Used on the worker's thread only.
    =========================================================================
*/
#ifndef PB_REGISTRY_H_INCLUDED
#define PB_REGISTRY_H_INCLUDED

#include "pb_worker.h"

//  Frameworks (bits of pb_registry_partner_t.frameworks)
#define PB_REGISTRY_FRAMEWORKS(XX) \
    XX (PB_FW_EAPC,     "EAPC") \
    XX (PB_FW_PFP,      "PFP") \
    XX (PB_FW_MD,       "MD") \
    XX (PB_FW_ICI,      "ICI") \
    XX (PB_FW_PATG,     "PATG") \
    XX (PB_FW_DIALOGUE, "DIALOGUE")

//  Programmes of the registry (bits of .programmes)
#define PB_REGISTRY_PROGRAMMES(XX) \
    XX (PB_PROG_IPCP, "IPCP") \
    XX (PB_PROG_IPAP, "IPAP") \
    XX (PB_PROG_PARP, "PARP") \
    XX (PB_PROG_ITCP, "ITCP")

//  The seven considerations (policy paragraph 16), in the order of the
//  policy weights; the first six are the profile's bits, the seventh is
//  the activity's area
#define PB_REGISTRY_CONSIDERATIONS(XX) \
    XX (PB_CONS_ASPIRES_MEMBERSHIP,   "aspires_membership") \
    XX (PB_CONS_SHARES_VALUES,        "shares_values") \
    XX (PB_CONS_SUPPORTS_OPERATIONS,  "supports_operations") \
    XX (PB_CONS_STRATEGIC_IMPORTANCE, "strategic_importance") \
    XX (PB_CONS_BILATERAL_FRAMEWORK,  "bilateral_framework") \
    XX (PB_CONS_FINANCES_ACTIVITIES,  "finances_activities") \
    XX (PB_CONS_PRIORITY_AREA,        "priority_area")

#define XX(name, text) name##_BIT,
enum { PB_REGISTRY_FRAMEWORKS (XX) PB_FW_COUNT };
enum { PB_REGISTRY_PROGRAMMES (XX) PB_PROG_COUNT };
#undef XX
#define XX(name, text) name,
typedef enum { PB_REGISTRY_CONSIDERATIONS (XX) PB_CONS_COUNT } pb_cons_t;
#undef XX
#define PB_FW(bit)   (1u << (bit##_BIT))    //  PB_FW (PB_FW_MD)
#define PB_PROG(bit) (1u << (bit##_BIT))    //  PB_PROG (PB_PROG_IPAP)

//  Wire names: pb_registry_framework_name (PB_FW_MD_BIT) is "MD", etc.
//  Static storage; NULL when out of range.
const char *
    pb_registry_framework_name (int bit);
const char *
    pb_registry_programme_name (int bit);
const char *
    pb_registry_consideration_name (pb_cons_t cons);

//  A partner as stored. 'name' is borrowed, NOT nul-terminated, and lives
//  until the end of the current event.
typedef struct {
    char country [65];                  //  ISO alpha-3 (or any code <= 64)
    const char *name;                   //  name_len bytes (borrowed)
    size_t name_len;
    unsigned frameworks;                //  PB_FW bits
    bool active;                        //  status active (else suspended)
    unsigned programmes;                //  PB_PROG bits
    bool has_profile;                   //  a profile was ever given
    unsigned profile;                   //  bit i: consideration i (0..5)
    bool is_ally;                       //  joined by an adopted accession
} pb_registry_partner_t;

//  Policy thresholds; the defaults until a registry.policy says otherwise
typedef struct {
    double discard_below;               //  mean relevance (2.5)
    int64_t discard_min_feedbacks;      //  (3)
    int64_t weights [PB_CONS_COUNT];    //  0..100 each (all 1)
    int64_t expiry_notice_days;         //  (90)
} pb_registry_policy_t;

//  The types pb_registry_apply reads, for a worker's pb_rules_t 'types'
#define PB_REGISTRY_TYPES \
    "registry.ally", "registry.partner", "registry.policy", "notify.nac.adopted"

//  What pb_registry_apply did with one event
typedef enum {
    PB_REGISTRY_NONE = 0,               //  not a registry event: rules go on
    PB_REGISTRY_ALLY,                   //  registry.ally
    PB_REGISTRY_PARTNER,                //  registry.partner
    PB_REGISTRY_POLICY,                 //  registry.policy
    PB_REGISTRY_ACCESSION               //  notify.nac.adopted accession
} pb_registry_kind_t;

typedef struct {
    pb_registry_kind_t kind;            //  what the event was
    bool changed;                       //  anything stored changed
    bool is_new;                        //  country not registered before
    bool name_changed;
    bool status_changed;                //  active <-> suspended
    bool frameworks_changed;
    bool programmes_changed;
    bool profile_changed;
    bool became_ally;                   //  ally or accession: now an Ally
    char country [65];                  //  the country ("" for policy)
    unsigned old_frameworks;            //  before the event (0 when new)
    bool was_active;                    //  before the event (false when new)
    bool had_profile;                   //  before the event (false when new)
    unsigned old_profile;               //  before the event (0 when new)
    pb_registry_policy_t old_policy;    //  before a registry.policy
} pb_registry_change_t;

//  Apply 'event' if it is one the registry keeps, and describe the change
//  in *change (kind NONE for other events; still 0). A notify.nac.adopted
//  is reported as ACCESSION only for an accession action (the caller's
//  rules may read it too). Returns 0, PB_WORKER_POISON (a value the
//  registry cannot store; the runtime quarantines it), or a store code.
int
    pb_registry_apply (pb_apply_t *ctx, const pb_envelope_t *event,
                       pb_registry_change_t *change);

//  True if 'country' is an Ally now (registry.ally or adopted accession)
bool
    pb_registry_is_ally (pb_apply_t *ctx, const char *country);

//  True if 'country' is registered at all (Ally or partner)
bool
    pb_registry_is_registered (pb_apply_t *ctx, const char *country);

//  Fill *partner for 'country'. Returns 0, or PB_ENOTFOUND if it was never
//  registry.partner (an Ally from the start is not a partner).
int
    pb_registry_partner (pb_apply_t *ctx, const char *country,
                         pb_registry_partner_t *partner);

//  True if 'country' is a partner, active, not DIALOGUE and not an Ally:
//  who may host a CPE, be informed, count in priority scores
bool
    pb_registry_is_eligible (pb_apply_t *ctx, const char *country);

//  Fill *policy with the thresholds in force: the defaults until a
//  registry.policy; a field a policy omits keeps the value in force.
void
    pb_registry_policy (pb_apply_t *ctx, pb_registry_policy_t *policy);

//  Self test of this module
void
    pb_registry_test (bool verbose);

#endif
