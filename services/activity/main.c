/*  =========================================================================
    pb-activity - the activities and feedback worker

    Usage: pb-activity [--config FILE] [--activity/KEY VALUE ...] [--dump DIR]
    =========================================================================
*/
#include "pb_activity.h"

int
main (int argc, char *argv [])
{
    return pb_worker_main (&pb_activity_rules, argc, argv);
}
