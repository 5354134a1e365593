/*  =========================================================================
    pb_config - one table per service: ZPL file, command line, defaults

    Each service declares one table of {path, type, default, min, max,
    offset, help} (the Redis/nginx idea) and a plain struct it fills. The
    loader applies, in order: the table's defaults, the ZPL file given with
    --config FILE (czmq zconfig), then command-line overrides, either by
    full path (--journal/batch_max=512 or --journal/batch_max 512) or by the
    key alone with '-' for '_' (--batch-max 512, --data-dir DIR). Errors name
    the key and where it came from (file or command line). Defaults exist
    only in the table. The struct holds values (strings are copied into
    fixed char arrays), never zconfig pointers, and is read-only afterwards.
    =========================================================================
*/
#ifndef PB_CONFIG_H_INCLUDED
#define PB_CONFIG_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PB_CONFIG_STR_MAX 256           //  size of a string field, with nul

typedef enum {
    PB_CONFIG_STR,                      //  char field [PB_CONFIG_STR_MAX]
    PB_CONFIG_INT,                      //  int64_t field, within [min, max]
    PB_CONFIG_BOOL                      //  bool field: true/false/1/0/yes/no
} pb_config_type_t;

typedef struct {
    const char *path;                   //  "journal/batch_max"
    pb_config_type_t type;              //  how to parse and store it
    const char *default_value;          //  as text, parsed like the file
    int64_t min;                        //  INT: lowest allowed
    int64_t max;                        //  INT: highest allowed
    size_t offset;                      //  offsetof (cfg struct, field)
    const char *help;                   //  one line for --help and docs
} pb_config_entry_t;

//  Error block -300..-399
#define PB_CONFIG_ERRORS(XX) \
    XX (PB_CONFIG_BAD_FILE,  -300, "configuration file cannot be read") \
    XX (PB_CONFIG_BAD_KEY,   -301, "unknown configuration key") \
    XX (PB_CONFIG_BAD_VALUE, -302, "configuration value out of range") \
    XX (PB_CONFIG_HELP,      -303, "help was printed") \
    XX (PB_CONFIG_CHECKED,   -304, "configuration checked and printed")

typedef enum {
#define XX(name, value, text) name = value,
    PB_CONFIG_ERRORS (XX)
#undef XX
} pb_config_err_t;

//  Fill 'cfg' from 'table' (terminated by an entry with path NULL), then
//  the file named by --config, then the command line. Arguments that are
//  not options (no leading "--") are left for the caller: their indexes
//  are stored in 'rest' (up to rest_max; *rest_count set) when 'rest' is
//  not NULL, and refused otherwise. "--help" prints the table to stdout
//  ("--help-markdown": as the README's Markdown reference) and returns
//  PB_CONFIG_HELP. "--check-config" loads everything as usual, then prints
//  the effective values to stdout and returns PB_CONFIG_CHECKED (the
//  caller runs its own cross-key checks, then exits 0 without starting).
//  A key of the table's own section in the file that the table does not
//  know is refused (PB_CONFIG_BAD_KEY). Returns 0, or PB_CONFIG_BAD_FILE,
//  PB_CONFIG_BAD_KEY, PB_CONFIG_BAD_VALUE after printing one line to
//  stderr that names the key and its source.
int
    pb_config_load (const pb_config_entry_t *table, void *cfg,
                    int argc, char *argv [],
                    int *rest, int rest_max, int *rest_count);

//  Log the effective configuration at notice level, one key per line.
void
    pb_config_log (const pb_config_entry_t *table, const void *cfg);

//  Print the table as a Markdown reference (key, type, default, range,
//  meaning) to 'file': the README's configuration reference is made so.
void
    pb_config_print_reference (const pb_config_entry_t *table, FILE *file);

//  Self test of this module
void
    pb_config_test (bool verbose);

#endif
