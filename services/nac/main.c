/*  =========================================================================
    pb-nac - the Council worker

    Usage: pb-nac [--config FILE] [--nac/KEY VALUE ...] [--dump DIR]
    =========================================================================
*/
#include "pb_nac.h"

int
main (int argc, char *argv [])
{
    return pb_worker_main (&pb_nac_rules, argc, argv);
}
