/*  =========================================================================
    pb_rights - the journal's allow-list and rights: one ZPL file

    With security on (journal/security), the journal reads journal/rights
    at start and again on SIGHUP. One section per client certificate (the
    NAME given to pbctl keygen), each with the certificate's public key
    and what that key may do:

        #   partnerbus rights
        nac
            public_key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
            src = "nac"                 #   the src values it may publish with
            publish = "notify.nac."     #   type prefixes it may publish
            subscribe = "*"             #   fanout prefixes it may subscribe to
            replay = "*"                #   types it may replay

    Each list is space-separated; "*" alone means every value; an absent
    or empty list means none. A key that is not in the file is refused at
    the CURVE handshake. Every subscriber may also subscribe to
    sys.heartbeat (it carries only the head and a time).

    A pb_rights_t is immutable once parsed: a reload parses a new one and
    swaps it in, so a lookup result stays valid until its pb_rights_t is
    destroyed. Owned by the journal actor's thread.
    =========================================================================
*/
#ifndef PB_RIGHTS_H_INCLUDED
#define PB_RIGHTS_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

typedef struct _pb_rights_t pb_rights_t;
typedef struct _pb_rights_key_t pb_rights_key_t;

#define PB_RIGHTS_FILE_MAX (1024 * 1024)        //  bytes of a rights file
#define PB_RIGHTS_KEYS_MAX 10000                //  sections of a rights file
#define PB_RIGHTS_LIST_MAX 64                   //  items of one list
#define PB_RIGHTS_ITEM_MAX 128                  //  bytes of one item

//  Parse the rights file at 'path'. Returns 0 and sets *rights_p to a new
//  object the caller owns, or PB_EIO (cannot read the file, or larger than
//  PB_RIGHTS_FILE_MAX) or PB_EINVAL (not ZPL, or a section breaks the
//  format) with a sentence naming the file and the section/key at fault in
//  'error' (never a key's bytes beyond the public key), *rights_p left alone.
int
    pb_rights_load (const char *path, pb_rights_t **rights_p,
                    char *error, size_t error_size);

//  The same from 'size' bytes of ZPL text (need not be nul-terminated).
//  Returns 0 or PB_EINVAL as pb_rights_load.
int
    pb_rights_parse (const char *text, size_t size, pb_rights_t **rights_p,
                     char *error, size_t error_size);

//  Destroy; NULL-safe, idempotent
void
    pb_rights_destroy (pb_rights_t **self_p);

//  How many keys the file lists
size_t
    pb_rights_size (pb_rights_t *self);

//  The key with the Z85 public key 'public_key' (40 characters), or NULL.
//  Valid until 'self' is destroyed.
const pb_rights_key_t *
    pb_rights_lookup (pb_rights_t *self, const char *public_key);

//  The section name of a key (borrowed, lives with its pb_rights_t)
const char *
    pb_rights_key_name (const pb_rights_key_t *key);

//  May 'key' publish an event of type 'type' with src 'src'? (Neither
//  string need be nul-terminated.) 'src' NULL: only the type is asked
//  about (control commands such as TICK, which append sys.tick).
bool
    pb_rights_may_publish (const pb_rights_key_t *key, const char *src,
                           size_t src_len, const char *type, size_t type_len);

//  May 'key' subscribe to fanout prefix 'prefix'? True when one of its
//  subscribe prefixes is a prefix of it (so it can receive nothing else),
//  or it is sys.heartbeat or longer.
bool
    pb_rights_may_subscribe (const pb_rights_key_t *key, const char *prefix,
                             size_t prefix_len);

//  May 'key' receive an event of type 'type' by replay?
bool
    pb_rights_may_replay (const pb_rights_key_t *key, const char *type,
                          size_t type_len);

//  May 'key' IMPORT another log's events (any type, any src, with their
//  own seq and ts)? Only with src "*" and publish "*".
bool
    pb_rights_may_import (const pb_rights_key_t *key);

//  True if every key of 'before' is in 'after' with the same subscribe
//  list: no subscriber already connected lost anything by the reload.
bool
    pb_rights_reads_kept (pb_rights_t *before, pb_rights_t *after);

//  Self test of this module
void
    pb_rights_test (bool verbose);

#endif
