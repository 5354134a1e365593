/*  =========================================================================
    pb_journal_cfg - the journal's one configuration table

    Every key, default and bound of the journal lives here and nowhere
    else (STYLE.md, Configuration). Section journal/ of the ZPL file; any
    key can be given on the command line (--journal/batch_max=512 or
    --batch-max 512).
    =========================================================================
*/
#include "pb_journal.h"

#include <string.h>

#define S_STR(key, def, field, help) \
    { "journal/" key, PB_CONFIG_STR, def, 0, 0, offsetof (pb_journal_cfg_t, field), help }
#define S_INT(key, def, min, max, field, help) \
    { "journal/" key, PB_CONFIG_INT, def, min, max, offsetof (pb_journal_cfg_t, field), help }
#define S_BOOL(key, def, field, help) \
    { "journal/" key, PB_CONFIG_BOOL, def, 0, 0, offsetof (pb_journal_cfg_t, field), help }

#define S_KIB 1024LL
#define S_MIB (1024LL * 1024)
#define S_GIB (1024LL * 1024 * 1024)

const pb_config_entry_t pb_journal_cfg_table [] = {
    S_STR ("data_dir", "./var/journal", data_dir, "directory of the LMDB log"),
    S_STR ("ingest", "tcp://127.0.0.1:7701", ingest, "ingest ROUTER endpoint"),
    S_STR ("fanout", "tcp://127.0.0.1:7702", fanout, "fanout PUB endpoint"),
    S_STR ("replay", "tcp://127.0.0.1:7703", replay, "replay and control ROUTER endpoint"),
    S_STR ("clock", "auto", clock, "auto: sys.tick every tick_interval; manual: only on TICK"),
    S_STR ("metrics", "", metrics, "HOST:PORT serving HTTP /metrics and /health; empty: off"),
    S_INT ("map_size", "64M", 1 * S_MIB, 1024 * S_GIB, map_size, "initial LMDB map size in bytes"),
    S_INT ("map_max", "64G", 1 * S_MIB, 1024 * S_GIB, map_max, "the map doubles when full, up to this"),
    S_INT ("prealloc", "8M", 0, 1 * S_GIB, prealloc, "bytes of the log's data file kept written ahead of its end (0: off)"),
    S_INT ("batch_max", "4096", 1, 65536, batch_max, "messages per group commit (one transaction, one sync)"),
    S_INT ("replay_batch", "1000", 1, 100000, replay_batch, "events per EVENTS message"),
    S_INT ("replay_credit_max", "1000", 1, 1000000, replay_credit_max, "outstanding credit (batches) per replay"),
    S_INT ("replay_idle", "60000", 100, 86400000, replay_idle, "ms without credit before a replay is dropped"),
    S_INT ("replay_max", "1024", 1, 100000, replay_max, "concurrent replays"),
    S_INT ("tick_interval", "1000", 1, 86400000, tick_interval, "ms between sys.tick events (clock auto)"),
    S_INT ("heartbeat_interval", "1000", 1, 86400000, heartbeat_interval, "ms between sys.heartbeat messages on fanout"),
    S_INT ("max_envelope", "65536", 64, 1 * S_MIB, max_envelope, "envelope size limit (too_large above)"),
    S_INT ("max_depth", "32", 2, 32, max_depth, "decoder nesting depth limit"),
    S_INT ("max_container", "4096", 1, 1 * S_MIB, max_container, "decoder entries of one array or map"),
    S_INT ("max_string", "65536", 1, 1 * S_MIB, max_string, "decoder bytes of one str or bin"),
    S_INT ("max_msg_size", "1M", 64 * S_KIB, 256 * S_MIB, max_msg_size, "ZMQ_MAXMSGSIZE of every socket"),
    S_INT ("reader_check_interval", "10000", 100, 86400000, reader_check_interval, "ms between LMDB stale reader checks"),
    S_BOOL ("security", "false", security, "CurveZMQ on every endpoint, rights per key (README, Security)"),
    S_STR ("cert", "", cert, "the journal's certificate (public file; the secret is FILE_secret)"),
    S_STR ("rights", "", rights, "the allow-list and rights file, re-read on SIGHUP"),
    S_BOOL ("verbose", "false", verbose, "log every message at debug level"),
    { NULL }
};

//  --------------------------------------------------------------------------

int
pb_journal_cfg_load (pb_journal_cfg_t *cfg, int argc, char *argv [])
{
    assert (cfg);
    memset (cfg, 0, sizeof *cfg);
    int rc = pb_config_load (pb_journal_cfg_table, cfg, argc, argv, NULL, 0, NULL);
    bool checking = rc == PB_CONFIG_CHECKED;    //  --check-config: the checks below too
    if (rc && !checking)
        return rc;
    if (!streq (cfg->clock, "auto") && !streq (cfg->clock, "manual")) {
        fprintf (stderr, "config: journal/clock: '%s' is not auto or manual\n", cfg->clock);
        return PB_CONFIG_BAD_VALUE;
    }
    if (cfg->map_max < cfg->map_size) {
        fprintf (stderr, "config: journal/map_max: below journal/map_size\n");
        return PB_CONFIG_BAD_VALUE;
    }
    if (cfg->max_msg_size <= cfg->max_envelope + 1024) {
        fprintf (stderr, "config: journal/max_msg_size: must be well above "
                 "journal/max_envelope, or too_large could never be answered\n");
        return PB_CONFIG_BAD_VALUE;
    }
    if (cfg->security && (!*cfg->cert || !*cfg->rights)) {
        fprintf (stderr, "config: journal/security: needs journal/cert and journal/rights\n");
        return PB_CONFIG_BAD_VALUE;
    }
    //  CurveZMQ is a ZMTP handshake, and inproc:// has none: an inproc
    //  endpoint would be served unauthenticated
    const char *endpoints [] = { cfg->ingest, cfg->fanout, cfg->replay };
    for (int i = 0; i < 3 && cfg->security; i++) {
        const char *at = endpoints [i] + (*endpoints [i] == '@' || *endpoints [i] == '>');
        if (strncmp (at, "tcp://", 6) && strncmp (at, "ipc://", 6)) {
            fprintf (stderr, "config: journal/security: endpoint %s is not tcp:// or "
                     "ipc://, where CurveZMQ cannot apply\n", endpoints [i]);
            return PB_CONFIG_BAD_VALUE;
        }
    }
    return checking? PB_CONFIG_CHECKED: 0;
}
