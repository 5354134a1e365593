/*  =========================================================================
    pb-journal - the journal process: load the configuration, run the actor

    Usage: pb-journal [--config FILE] [--data-dir DIR] [--journal/KEY=VALUE]...
    (--help lists every key). Exit status 0 after SIGINT/SIGTERM, non-zero
    when the configuration is wrong or the log failed. SIGHUP re-reads the
    rights file (journal/security).
    =========================================================================
*/
#include "pb_journal.h"

#include <pthread.h>
#include <signal.h>

int
main (int argc, char *argv [])
{
    pb_journal_cfg_t cfg;
    int rc = pb_journal_cfg_load (&cfg, argc, argv);
    if (rc == PB_CONFIG_HELP || rc == PB_CONFIG_CHECKED)
        return EXIT_SUCCESS;
    if (rc)
        return EXIT_FAILURE;            //  The loader said what was wrong
    //  SIGHUP (re-read the rights file) is read by the actor from a
    //  signalfd, so it is blocked in every thread: threads inherit this
    //  mask, and none has started yet
    sigset_t hup;
    sigemptyset (&hup);
    sigaddset (&hup, SIGHUP);
    pthread_sigmask (SIG_BLOCK, &hup, NULL);
    zsys_init ();
    zsys_set_logident ("pb-journal");
    zsys_set_logstream (stdout);
    zsys_notice ("journal: starting version=%s", "0.1.0");
    pb_config_log (pb_journal_cfg_table, &cfg);

    zactor_t *journal = zactor_new (pb_journal_actor, &cfg);
    assert (journal);
    rc = PB_EINTR;
    //  Startup status, then the exit status; a signal interrupts the wait
    //  (and stops the actor, which then reports), so wait again
    while (zsock_recv (journal, "i", &rc) == -1 && zsys_interrupted)
        ;
    if (rc == 0)
        while (zsock_recv (journal, "i", &rc) == -1)
            if (!zsys_interrupted) {
                rc = PB_EIO;
                break;
            }
    zactor_destroy (&journal);
    return rc == 0? EXIT_SUCCESS: EXIT_FAILURE;
}
