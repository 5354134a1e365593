/*  =========================================================================
    pb_private - files and directories private to the service user
    =========================================================================
*/
#include "pb_private.h"

#include <czmq.h>
#include <errno.h>
#include <sys/stat.h>

#include "pb_error.h"

//  --------------------------------------------------------------------------

int
pb_private_dir (const char *path)
{
    assert (path);
    char copy [PATH_MAX];
    if (strlen (path) == 0 || strlen (path) >= sizeof copy) {
        zsys_error ("pb_private: bad directory path length=%zu", strlen (path));
        return PB_EIO;
    }
    strcpy (copy, path);
    //  Each missing component, parents first (mkdir -p), mode 0700: mkdir
    //  masks the mode with the umask, which can only take bits away
    for (char *slash = strchr (copy + 1, '/'); ; slash = strchr (slash + 1, '/')) {
        if (slash)
            *slash = 0;
        if (mkdir (copy, 0700) && errno != EEXIST) {
            zsys_error ("pb_private: cannot create directory path=%s error=%s",
                        copy, strerror (errno));
            return PB_EIO;
        }
        if (!slash)
            break;
        *slash = '/';
        while (slash [1] == '/')
            slash++;
        if (slash [1] == 0)
            break;
    }
    struct stat st;
    if (stat (path, &st) || !S_ISDIR (st.st_mode)) {
        zsys_error ("pb_private: not a directory path=%s", path);
        return PB_EIO;
    }
    if (st.st_mode & 077)
        zsys_warning ("pb_private: others may access the directory path=%s mode=%03o "
                      "(chmod 700 it)", path, (unsigned) (st.st_mode & 0777));
    return 0;
}

//  --------------------------------------------------------------------------

bool
pb_private_file_ok (const char *path, const char *what)
{
    assert (path && what);
    struct stat st;
    if (stat (path, &st)) {
        zsys_error ("pb_private: %s cannot be read path=%s error=%s", what, path,
                    strerror (errno));
        return false;
    }
    if (!S_ISREG (st.st_mode)) {
        zsys_error ("pb_private: %s is not a file path=%s", what, path);
        return false;
    }
    if (st.st_mode & 077) {
        zsys_error ("pb_private: %s may be read by others path=%s mode=%03o "
                    "(chmod 600 it)", what, path, (unsigned) (st.st_mode & 0777));
        return false;
    }
    return true;
}

//  --------------------------------------------------------------------------

void
pb_private_test (bool verbose)
{
    printf (" * pb_private: ");
    char base [] = "/tmp/pb_private_test.XXXXXX";
    assert (mkdtemp (base));
    char path [PATH_MAX];
    snprintf (path, sizeof path, "%s/a//b/c/", base);
    int rc = pb_private_dir (path);
    assert (rc == 0);
    rc = pb_private_dir (path);                 //  Exists: fine
    assert (rc == 0);
    struct stat st;
    snprintf (path, sizeof path, "%s/a/b/c", base);
    assert (stat (path, &st) == 0 && (st.st_mode & 0777) == 0700);
    snprintf (path, sizeof path, "%s/a", base);
    assert (stat (path, &st) == 0 && (st.st_mode & 0777) == 0700);

    char file [PATH_MAX];
    snprintf (file, sizeof file, "%s/a/key", base);
    FILE *handle = fopen (file, "w");
    assert (handle);
    fclose (handle);
    assert (chmod (file, 0644) == 0);
    assert (!pb_private_file_ok (file, "test/key"));
    assert (chmod (file, 0600) == 0);
    assert (pb_private_file_ok (file, "test/key"));
    snprintf (path, sizeof path, "%s/a/absent", base);
    assert (!pb_private_file_ok (path, "test/key"));
    assert (pb_private_dir (file) == PB_EIO);   //  A file, not a directory
    zsys_file_delete (file);
    snprintf (path, sizeof path, "%s/a/b/c", base);
    zsys_dir_delete (path);
    snprintf (path, sizeof path, "%s/a/b", base);
    zsys_dir_delete (path);
    snprintf (path, sizeof path, "%s/a", base);
    zsys_dir_delete (path);
    zsys_dir_delete (base);
    printf ("OK\n");
}
