/*  =========================================================================
    pb_catalogue_doc - prints the catalogue's reference table (Markdown)

    Usage: pb_catalogue_doc > table.md
    The ctest proto_readme_sync compares its output with the text between
    the catalogue markers of proto/README.md; the README's "Catalogue"
    section says how to regenerate it.
    =========================================================================
*/
#include "pb_catalogue.h"

#include <stdlib.h>

int
main (void)
{
    return pb_catalogue_print (stdout) == 0? EXIT_SUCCESS: EXIT_FAILURE;
}
