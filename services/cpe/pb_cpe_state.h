/*  =========================================================================
    pb_cpe_state - the CPE worker's stored records (the layout in pb_cpe.h)

    The low layer under pb_cpe_rules: one load/store pair per record kind,
    every value a msgpack array in a fixed field order, so that a store
    rebuilt by replay is byte-identical. Every call works inside the
    current event's nested transaction (pb_apply_t): the caller's thread
    only, and nothing here outlives the event.

    Common returns: 0; PB_ENOTFOUND (a lookup found nothing);
    PB_WORKER_POISON (a stored value is unreadable: a bug, so the event is
    quarantined; already passed through pb_apply_poison); a store code
    (PB_WORKER_FULL, PB_WORKER_STORE, PB_WORKER_CORRUPT) to pass on.
    =========================================================================
*/
#ifndef PB_CPE_STATE_H_INCLUDED
#define PB_CPE_STATE_H_INCLUDED

#include "pb_worker.h"
#include "pb_cpe_date.h"

#define PB_CPE_CODE_SIZE 65             //  ids and codes: at most 64 bytes

//  The CPE of one partner (holder/<P>)
typedef struct {
    char ally [PB_CPE_CODE_SIZE];       //  the Ally whose embassy it is
    char decision [PB_CPE_CODE_SIZE];   //  the proposal that authorised it
    char term_start [PB_CPE_DATE_SIZE]; //  the handover's effective date
    char term_end [PB_CPE_DATE_SIZE];   //  two years later
    int64_t end_ms;                     //  log time of term_end's midnight
    bool noticed;                       //  term_expiring went out
} pb_cpe_holder_t;

//  The first nac.proposal of an id (proposal/<id>)
typedef struct {
    uint64_t seq;                       //  its seq in the log
    bool is_assign;                     //  action kind cpe.assign
    char partner [PB_CPE_CODE_SIZE];    //  cpe.assign only, else ""
    char ally [PB_CPE_CODE_SIZE];       //  cpe.assign only, else ""
    char state [16];                    //  open, adopted, blocked, invalid
    bool used;                          //  a handover was assigned with it
} pb_cpe_proposal_t;

//  A cpe.handover not yet complete (queue/<P>/<seq hex16>)
typedef struct {
    char partner [PB_CPE_CODE_SIZE];
    char to [PB_CPE_CODE_SIZE];
    char decision [PB_CPE_CODE_SIZE];
    char effective [PB_CPE_DATE_SIZE];
    char from [PB_CPE_CODE_SIZE];       //  "" when absent
} pb_cpe_handover_t;

//  Holder of 'partner': 0 and *holder, PB_ENOTFOUND, POISON
int
    pb_cpe_state_holder_get (pb_apply_t *ctx, const char *partner,
                             pb_cpe_holder_t *holder);
int
    pb_cpe_state_holder_put (pb_apply_t *ctx, const char *partner,
                             const pb_cpe_holder_t *holder);
int
    pb_cpe_state_holder_del (pb_apply_t *ctx, const char *partner);

//  Append every partner that has a holder to 'partners' (a zlist of
//  strings with autofree), in key order. Returns 0, POISON or a store code.
int
    pb_cpe_state_holders (pb_apply_t *ctx, zlist_t *partners);

//  The first proposal of 'id': 0 and *proposal, PB_ENOTFOUND, POISON
int
    pb_cpe_state_proposal_get (pb_apply_t *ctx, const char *id,
                               pb_cpe_proposal_t *proposal);
int
    pb_cpe_state_proposal_put (pb_apply_t *ctx, const char *id,
                               const pb_cpe_proposal_t *proposal);

//  Record that the nac.proposal at 'seq' repeats the id 'id' (a later
//  duplicate); is_duplicate tells whether 'seq' was one of those
int
    pb_cpe_state_duplicate_put (pb_apply_t *ctx, const char *id, uint64_t seq);
bool
    pb_cpe_state_is_duplicate (pb_apply_t *ctx, const char *id, uint64_t seq);

//  Queue handover 'h' of log position 'seq' behind those of its partner
int
    pb_cpe_state_queue_put (pb_apply_t *ctx, uint64_t seq,
                            const pb_cpe_handover_t *h);

//  The oldest queued handover of 'partner': 0 with *h and *seq_p,
//  PB_ENOTFOUND if none, POISON, or a store code
int
    pb_cpe_state_queue_first (pb_apply_t *ctx, const char *partner,
                              pb_cpe_handover_t *h, uint64_t *seq_p);
int
    pb_cpe_state_queue_del (pb_apply_t *ctx, const char *partner, uint64_t seq);

//  Record that 'ally' volunteers for 'partner' at log position 'seq',
//  unless it already stands (it keeps its first rank then)
int
    pb_cpe_state_volunteer_add (pb_apply_t *ctx, const char *partner,
                                const char *ally, uint64_t seq);

//  Append the allies standing for 'partner' to 'allies' (a zlist of
//  strings with autofree), oldest first. Returns 0, POISON or a store code.
int
    pb_cpe_state_volunteers (pb_apply_t *ctx, const char *partner,
                             zlist_t *allies);

//  The offer of 'ally' for 'partner' stands no more (absent is fine)
int
    pb_cpe_state_volunteer_del (pb_apply_t *ctx, const char *partner,
                                const char *ally);

//  Self test of this module
void
    pb_cpe_state_test (bool verbose);

#endif
