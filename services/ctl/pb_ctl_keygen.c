/*  =========================================================================
    pb_ctl_keygen - pbctl keygen NAME [--dir DIR]: a CURVE certificate

    Writes DIR/NAME.cert (the public key, to copy into the rights file or
    give to clients as the server's key) and DIR/NAME.cert_secret (the
    secret key, mode 0600, for the one process that is NAME), as czmq's
    zcert does, and prints the rights-file section for the new key. Never
    overwrites a certificate: rotating a key is a new NAME (README,
    Security). The secret key is never printed.
    =========================================================================
*/
#include "pb_ctl.h"
#include "pb_private.h"

#include <sys/stat.h>

static const char *s_help =
    "Usage: pbctl keygen NAME [--dir DIR]\n"
    "Create a CurveZMQ certificate: DIR/NAME.cert (public key) and\n"
    "DIR/NAME.cert_secret (secret key, mode 0600); DIR (default ./keys) is\n"
    "created 0700 if absent. Prints the public key and a section for the\n"
    "journal's rights file (--json: {name, public_key, cert, secret}).\n"
    "Never overwrites an existing certificate (exit 1).\n"
    "NAME: 1..64 letters, digits, '-', '_' or '.'.\n"
    "Options:\n"
    "  --dir DIR        where to write the files (default ./keys)\n"
    "  --json           JSON output\n"
    "  -h, --help       this help\n";

static bool
s_name_ok (const char *name)
{
    size_t len = strlen (name);
    bool ok = len > 0 && len <= 64 && name [0] != '.';
    for (size_t i = 0; i < len; i++)
        ok &= isalnum ((unsigned char) name [i]) || strchr ("-_.", name [i]);
    return ok;
}

int
pb_ctl_keygen (int argc, char *argv [])
{
    const char *name = NULL, *dir = "./keys";
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (streq (argv [i], "--help") || streq (argv [i], "-h")) {
            fputs (s_help, stdout);
            return PB_CTL_EXIT_OK;
        }
        if (streq (argv [i], "--dir") && i + 1 < argc)
            dir = argv [++i];
        else
        if (streq (argv [i], "--json"))
            json = true;
        else
        if (argv [i][0] != '-' && !name)
            name = argv [i];
        else {
            fprintf (stderr, "pbctl keygen: unexpected '%s' (see --help)\n", argv [i]);
            return PB_CTL_EXIT_USAGE;
        }
    }
    if (!name || !s_name_ok (name)) {
        fprintf (stderr, "pbctl keygen: NAME is 1..64 letters, digits, '-', '_' or '.' "
                 "(see --help)\n");
        return PB_CTL_EXIT_USAGE;
    }
    char path [PATH_MAX], secret [PATH_MAX + 8];
    if (snprintf (path, sizeof path, "%s/%s.cert", dir, name) >= (int) sizeof path) {
        fprintf (stderr, "pbctl keygen: --dir is too long\n");
        return PB_CTL_EXIT_USAGE;
    }
    snprintf (secret, sizeof secret, "%s_secret", path);
    if (pb_private_dir (dir))
        return PB_CTL_EXIT_REFUSED;     //  Said why
    if (zsys_file_exists (path) || zsys_file_exists (secret)) {
        fprintf (stderr, "pbctl keygen: %s exists: a certificate is never overwritten "
                 "(take a new NAME to rotate a key)\n", path);
        return PB_CTL_EXIT_REFUSED;
    }
    zcert_t *cert = zcert_new ();
    assert (cert);
    zcert_set_meta (cert, "name", "%s", name);
    //  The secret file is created 0600 (zcert_save_secret uses
    //  zsys_file_mode_private); chmod makes sure whatever the umask
    int rc = zcert_save (cert, path);
    if (rc == 0)
        rc = chmod (secret, 0600);
    if (rc == 0)
        rc = chmod (path, 0644);        //  Public: may be handed out
    if (rc) {
        fprintf (stderr, "pbctl keygen: cannot write %s: %s\n", path, strerror (errno));
        zsys_file_delete (path);
        zsys_file_delete (secret);
        zcert_destroy (&cert);
        return PB_CTL_EXIT_REFUSED;
    }
    if (json) {
        json_t *line = json_pack ("{s:s, s:s, s:s, s:s}", "name", name, "public_key",
                                  zcert_public_txt (cert), "cert", path, "secret", secret);
        pb_ctl_json_print (stdout, line);
        json_decref (line);
    }
    else
        printf ("public_key %s\ncert %s\nsecret %s\n\n"
                "#   For the journal's rights file (journal/rights):\n"
                "%s\n    public_key = \"%s\"\n    src = \"%s\"\n    publish = \"\"\n"
                "    subscribe = \"\"\n    replay = \"\"\n",
                zcert_public_txt (cert), path, secret, name, zcert_public_txt (cert), name);
    fflush (stdout);
    zcert_destroy (&cert);
    return PB_CTL_EXIT_OK;
}
