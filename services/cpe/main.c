/*  =========================================================================
    pb-cpe - the Contact Point Embassy worker

    Usage: pb-cpe [--config FILE] [--cpe/KEY VALUE ...] [--dump DIR]
    =========================================================================
*/
#include "pb_cpe.h"

int
main (int argc, char *argv [])
{
    return pb_worker_main (&pb_cpe_rules, argc, argv);
}
