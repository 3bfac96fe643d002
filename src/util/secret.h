/* secret: secrets kept at rest, encrypted with one key per data dir. The key is 32 random
 * bytes in DATA/keys/secrets.key (mode 0600, directory 0700), made once, atomically, the
 * first time a secret is sealed; a key file that others may read is refused, not used.
 * A sealed value is text: "v1:" + base64(nonce || crypto_secretbox_easy(...)) with a fresh
 * random 24-byte nonce per value (XSalsa20-Poly1305: confidential and authenticated).
 * Each value is bound to a context string ("registry:ghcr.io"): the context is sealed inside
 * with it and checked on opening, so a value copied from one record to another in the store
 * does not open there. Nothing here logs; plaintext buffers are wiped before they are freed.
 * Needs sodium_init() (the server calls it at start-up; so must a test). */
#ifndef BERTH_SECRET_H
#define BERTH_SECRET_H
#include <stddef.h>
#include "util/buf.h"
#include "util/err.h"

#define SECRET_KEY_BYTES 32
#define SECRET_KEY_FILE "keys/secrets.key"   /* under the data dir */
#define SECRET_CONTEXT_MAX 255

struct secret_key {
	unsigned char k[SECRET_KEY_BYTES];
};

/* Read DATA/keys/secrets.key into key, creating it first when it does not exist (a random
 * key, written to a temp file and linked into place, so a reader never sees half a key and
 * two creators agree on one). Fails (ERR_INTERNAL, naming the file) when it is not a regular
 * file of exactly 32 bytes or its mode lets group or others read it. Wipe key with
 * secret_key_wipe when done. */
int secret_key_load(const char *data_dir, struct secret_key *key, struct err *e);
void secret_key_wipe(struct secret_key *key);

/* Seal n bytes of plain under key, bound to context (1..255 bytes). Returns the sealed text
 * (caller frees; it holds nothing secret), or NULL when context is empty or too long. */
char *secret_seal(const struct secret_key *key, const char *context, const void *plain, size_t n);
/* Open a sealed text made for context: the plaintext is appended to out (NUL-terminated as
 * every buf; the caller wipes it with secret_buf_wipe). -1 with e (ERR_INTERNAL) when the
 * text is malformed, was sealed with another key or for another context, or was altered. */
int secret_open(const struct secret_key *key, const char *context, const char *sealed,
		struct buf *out, struct err *e);

/* Zero a buffer's whole allocation, then free it (accepts an empty buf). */
void secret_buf_wipe(struct buf *b);
/* Zero and free a NUL-terminated string (accepts NULL). */
void secret_str_wipe(char *s);
#endif
