/*  =========================================================================
    pb_activity_record - one stored activity, its indexes, and the two
    computations on it (priority score, discard condition)

    Internal to the activity worker. The record lives under act/<id> as a
    msgpack map with its keys always in this order, so a store rebuilt by
    replay is byte-identical (invariant 3):
        area, tool, review_every_days, open, partners [C...],
        feedbacks, relevance_sum, effectiveness_sum,
        last_feedback, review_due, candidate, score
    Feedback is kept as exact integer sums (means are derived), so every
    decision on it is exact and deterministic. The record owns its indexes:
    member/<C>/<id> for each partner, due/<ms>/<id> while it is open.
    Runs on the worker's thread, inside the current event's transaction.
    =========================================================================
*/
#ifndef PB_ACTIVITY_RECORD_H_INCLUDED
#define PB_ACTIVITY_RECORD_H_INCLUDED

#include "pb_worker.h"
#include "pb_registry.h"

#define PB_ACTIVITY_ID_MAX       65     //  ids: 64 bytes + nul
#define PB_ACTIVITY_PARTNERS_MAX 256    //  partners of one activity
#define PB_ACTIVITY_DAY_MS       86400000LL

typedef struct {
    char id [PB_ACTIVITY_ID_MAX];       //  activity id
    char area [32];                     //  one of the nine areas
    char tool [16];                     //  PCM, IPCP, ...
    int64_t review_every_days;          //  review period, days (1..3650)
    bool open;                          //  false once discarded
    uint64_t feedbacks;                 //  number of feedbacks
    uint64_t relevance_sum;             //  sum of their relevance (1..5)
    uint64_t effectiveness_sum;         //  sum of their effectiveness
    int64_t last_feedback;              //  log time of the last feedback
                                        //  (of the registration at first)
    int64_t review_due;                 //  next review deadline (log time)
    bool candidate;                     //  discard condition holds now
    int64_t score;                      //  last published priority score
    size_t partner_count;               //  partners used
    char partners [PB_ACTIVITY_PARTNERS_MAX][4];    //  ISO alpha-3 codes
} pb_activity_record_t;

//  A priority score and what it was computed from
typedef struct {
    int64_t counts [PB_CONS_COUNT];     //  c_i: counted partners with i
    int64_t n;                          //  partners counted (1 if none)
    int64_t score;                      //  0..100
} pb_activity_score_t;

//  Load the record of activity 'id' into *rec (strings copied, so it
//  outlives later puts). Returns 0, PB_ENOTFOUND, or PB_WORKER_POISON if
//  the stored value cannot be read (reason set).
int
    pb_activity_record_load (pb_apply_t *ctx, const char *id,
                             pb_activity_record_t *rec);

//  Store *rec under act/<id>. Returns 0 or a store code.
int
    pb_activity_record_store (pb_apply_t *ctx,
                              const pb_activity_record_t *rec);

//  True if 'country' is one of the activity's partners
bool
    pb_activity_record_has_partner (const pb_activity_record_t *rec,
                                    const char *country);

//  Add partner 'country' (3 letters) if it is not there yet, with its
//  member/ index key. Sets *added. Returns 0, PB_WORKER_POISON (bad code,
//  or PB_ACTIVITY_PARTNERS_MAX reached), or a store code.
int
    pb_activity_record_add_partner (pb_apply_t *ctx,
                                    pb_activity_record_t *rec,
                                    const char *country, bool *added);

//  Move the activity's review deadline to 'due' (its due/ index key
//  follows); a negative 'due' removes the deadline (closed activity).
//  Returns 0 or a store code.
int
    pb_activity_record_set_due (pb_apply_t *ctx, pb_activity_record_t *rec,
                                int64_t due);

//  'from' plus 'days' days in ms, saturating at INT64_MAX (never due)
int64_t
    pb_activity_record_after_days (int64_t from, int64_t days);

//  What the score needs of each partner, remembered across the scores of
//  one event that writes no registry record (a rescore of every activity
//  of a partner, or of all of them): one registry read per partner, not
//  one per partner of each activity. Zero it before the first use.
#define PB_ACTIVITY_CACHE_MAX 64
typedef struct {
    size_t count;                       //  entries used
    struct {
        char country [4];               //  ISO alpha-3
        bool counted;                   //  registered, not DIALOGUE, no Ally
        unsigned profile;               //  its profile bits (0 if none)
    } entry [PB_ACTIVITY_CACHE_MAX];
} pb_activity_partners_t;

//  Compute the activity's priority score under 'policy' (EVENTS.md): the
//  six profile considerations over the activity's registered partners
//  that are neither DIALOGUE nor Allies, plus priority_area. 'cache' may
//  be NULL. Returns 0, or PB_WORKER_POISON if the weights are out of
//  range or all 0.
int
    pb_activity_record_score (pb_apply_t *ctx,
                              const pb_activity_record_t *rec,
                              const pb_registry_policy_t *policy,
                              pb_activity_partners_t *cache,
                              pb_activity_score_t *score);

//  Whether 'change' (a registry event that changed something) can move
//  any score: whether its country's counting or counted profile bits
//  differ from before the event. A suspension, a name or a programme does
//  not count, nor does an Ally's record; a score depends on nothing else
//  of the registry. Reads the country as the event left it.
bool
    pb_activity_record_inputs_changed (pb_apply_t *ctx,
                                       const pb_registry_change_t *change);

//  The score formula alone: (200 * sum (w_i * c_i) + n * W) div (2 n W),
//  W = sum (w_i). Returns -1 if W is 0 or an input is out of range.
int64_t
    pb_activity_record_formula (const int64_t counts [PB_CONS_COUNT],
                                int64_t n,
                                const int64_t weights [PB_CONS_COUNT]);

//  True if 'area' is one of the eight priority areas (not "other")
bool
    pb_activity_record_is_priority_area (const char *area);

//  True if sum / count < below, compared exactly (no rounding of the
//  mean); false when count is 0.
bool
    pb_activity_record_mean_below (uint64_t sum, uint64_t count,
                                   double below);

//  The discard condition: at least discard_min_feedbacks feedbacks and a
//  mean relevance below discard_below
bool
    pb_activity_record_is_candidate (const pb_activity_record_t *rec,
                                     const pb_registry_policy_t *policy);

//  Self test of this module
void
    pb_activity_record_test (bool verbose);

#endif
