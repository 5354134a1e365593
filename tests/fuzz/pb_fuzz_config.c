/*  =========================================================================
    pb_fuzz_config - the configuration file parser (common/pb_config.c)

    Input: the text of a ZPL file, given to the journal's loader as
    --config FILE (czmq's zconfig parses it, pb_config applies every key of
    the table: sizes with units, integer bounds, booleans, string lengths),
    followed by the command-line override --batch-max taken from the
    input's first line, so both sources are parsed from untrusted text.
    Whatever the text, the loader returns 0 or a PB_CONFIG_* code, and a
    configuration it accepts has every value inside the table's bounds.
    =========================================================================
*/
#include "pb_fuzz.h"

#include <assert.h>
#include <czmq.h>
#include <string.h>
#include <unistd.h>

#include "pb_journal.h"

//  The file the loader reads, named once per process
static char s_path [64];

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    zsys_init ();
    zsys_set_logstream (NULL);
    zsys_set_logsystem (false);
    zsys_handler_set (NULL);
    const char *base = getenv ("PB_FUZZ_TMP");
    snprintf (s_path, sizeof s_path, "%s/pb-fuzz-config.XXXXXX", base? base: "/tmp");
    int fd = mkstemp (s_path);
    assert (fd >= 0);
    close (fd);
    return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    FILE *file = fopen (s_path, "wb");
    assert (file);
    assert (fwrite (data, 1, size, file) == size || size == 0);
    fclose (file);

    //  The first line (up to 63 bytes, no nul) as a command-line value
    char value [64];
    size_t len = 0;
    while (len < size && len < sizeof value - 1 && data [len] != '\n' && data [len])
        len++;
    memcpy (value, data, len);
    value [len] = 0;
    char *argv [] = { "pb_fuzz_config", "--config", s_path, "--batch-max", value, NULL };
    char *file_only [] = { "pb_fuzz_config", "--config", s_path, NULL };
    pb_journal_cfg_t cfg;
    for (int round = 0; round < 2; round++) {
        memset (&cfg, 0x5a, sizeof cfg);
        int rc = round? pb_journal_cfg_load (&cfg, 5, argv)
                      : pb_journal_cfg_load (&cfg, 3, file_only);
        //  PB_CONFIG_HELP too: the loader takes a "-h" anywhere on the
        //  command line, a value included, as a request for help
        assert (rc == 0 || rc == PB_CONFIG_BAD_FILE || rc == PB_CONFIG_BAD_KEY
                || rc == PB_CONFIG_BAD_VALUE || rc == PB_CONFIG_HELP);
        if (rc)
            continue;
        //  Every accepted value is within its table's bounds
        for (const pb_config_entry_t *e = pb_journal_cfg_table; e->path; e++) {
            const char *field = (const char *) &cfg + e->offset;
            if (e->type == PB_CONFIG_INT) {
                int64_t v;
                memcpy (&v, field, sizeof v);
                assert (v >= e->min && v <= e->max);
            }
            else
            if (e->type == PB_CONFIG_STR)
                assert (memchr (field, 0, PB_CONFIG_STR_MAX));
        }
        assert (cfg.map_max >= cfg.map_size);
        assert (streq (cfg.clock, "auto") || streq (cfg.clock, "manual"));
    }
    return 0;
}
