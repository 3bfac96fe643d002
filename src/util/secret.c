/* secret: the data dir's secrets key and crypto_secretbox sealing of values bound to a
 * context (see secret.h). The file and the sealed format are the whole contract; no
 * plaintext or key byte leaves this file except into the caller's buffers. */
#include "util/secret.h"
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "util/fsutil.h"

#define SEALED_PREFIX "v1:"
#define SEALED_MAX (64 * 1024)   /* base64 text; far above any secret berth keeps */

void secret_key_wipe(struct secret_key *key)
{
	if (key)
		sodium_memzero(key->k, sizeof key->k);
}

void secret_buf_wipe(struct buf *b)
{
	if (b->p)
		sodium_memzero(b->p, b->cap);
	buf_free(b);
}

void secret_str_wipe(char *s)
{
	if (!s)
		return;
	sodium_memzero(s, strlen(s));
	free(s);
}

/* Make the key file: random bytes into a private temp file, synced, then link()ed to path,
 * which (unlike rename) never replaces a key another process made first: EEXIST is fine,
 * the caller then reads that one. */
static int create_key(const char *dir, const char *path, struct err *e)
{
	char *tmp = xasprintf("%s/.secrets.key.XXXXXX", dir);
	int fd = mkstemp(tmp);   /* mode 0600 */
	if (fd < 0) {
		err_errno(e, errno, "create the secrets key in %s", dir);
		free(tmp);
		return -1;
	}
	struct secret_key k;
	randombytes_buf(k.k, sizeof k.k);
	ssize_t w;
	do
		w = write(fd, k.k, sizeof k.k);
	while (w < 0 && errno == EINTR);
	secret_key_wipe(&k);
	int rc = 0;
	if (w != (ssize_t)sizeof k.k)
		rc = err_errno(e, w < 0 ? errno : EIO, "write the secrets key %s", tmp);
	else if (fsync(fd) < 0)
		rc = err_errno(e, errno, "sync the secrets key %s", tmp);
	close(fd);
	if (rc == 0 && link(tmp, path) < 0 && errno != EEXIST)
		rc = err_errno(e, errno, "create %s", path);
	unlink(tmp);
	free(tmp);
	if (rc == 0)
		fs_fsync_dir(dir);
	return rc;
}

int secret_key_load(const char *data_dir, struct secret_key *key, struct err *e)
{
	char *dir = xasprintf("%s/keys", data_dir);
	char *path = xasprintf("%s/" SECRET_KEY_FILE, data_dir);
	int rc = -1, fd = -1;
	if (fs_mkdir_p(dir, 0700, e) < 0)
		goto out;
	for (int attempt = 0; attempt < 2 && fd < 0; attempt++) {
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0 && errno != ENOENT) {
			err_errno(e, errno, "open the secrets key %s", path);
			goto out;
		}
		if (fd < 0 && create_key(dir, path, e) < 0)
			goto out;
	}
	if (fd < 0) {
		err_set(e, ERR_INTERNAL, "the secrets key %s vanished while it was being made", path);
		goto out;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		err_errno(e, errno, "stat the secrets key %s", path);
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size != SECRET_KEY_BYTES) {
		err_set(e, ERR_INTERNAL, "the secrets key %s is not a file of %d bytes: it is damaged; "
			"restore it from a backup (without it the stored secrets cannot be read)", path,
			SECRET_KEY_BYTES);
		goto out;
	}
	if (st.st_mode & 077) {
		err_set(e, ERR_INTERNAL, "the secrets key %s may be read by other users (mode %04o): "
			"`chmod 600 %s`", path, (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	size_t got = 0;
	while (got < sizeof key->k) {
		ssize_t r = read(fd, key->k + got, sizeof key->k - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			secret_key_wipe(key);
			err_errno(e, r < 0 ? errno : EIO, "read the secrets key %s", path);
			goto out;
		}
		got += (size_t)r;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(dir);
	free(path);
	return rc;
}

char *secret_seal(const struct secret_key *key, const char *context, const void *plain, size_t n)
{
	size_t clen = context ? strlen(context) : 0;
	if (clen == 0 || clen > SECRET_CONTEXT_MAX)
		return NULL;
	/* message = context length (1 byte) || context || plain */
	size_t mlen = 1 + clen + n;
	unsigned char *m = xmalloc(mlen);
	m[0] = (unsigned char)clen;
	memcpy(m + 1, context, clen);
	if (n)
		memcpy(m + 1 + clen, plain, n);
	size_t blen = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + mlen;
	unsigned char *box = xmalloc(blen);
	randombytes_buf(box, crypto_secretbox_NONCEBYTES);
	crypto_secretbox_easy(box + crypto_secretbox_NONCEBYTES, m, mlen, box, key->k);
	sodium_memzero(m, mlen);
	free(m);
	size_t tlen = sodium_base64_ENCODED_LEN(blen, sodium_base64_VARIANT_ORIGINAL);
	char *out = xmalloc(strlen(SEALED_PREFIX) + tlen);
	memcpy(out, SEALED_PREFIX, strlen(SEALED_PREFIX));
	sodium_bin2base64(out + strlen(SEALED_PREFIX), tlen, box, blen, sodium_base64_VARIANT_ORIGINAL);
	free(box);
	return out;
}

int secret_open(const struct secret_key *key, const char *context, const char *sealed,
		struct buf *out, struct err *e)
{
	size_t clen = context ? strlen(context) : 0, slen = sealed ? strlen(sealed) : 0;
	size_t plen = strlen(SEALED_PREFIX);
	if (clen == 0 || clen > SECRET_CONTEXT_MAX)
		return err_set(e, ERR_INTERNAL, "a secret's context must be 1 to %d bytes",
			       SECRET_CONTEXT_MAX);
	if (slen < plen || slen > SEALED_MAX || memcmp(sealed, SEALED_PREFIX, plen))
		return err_set(e, ERR_INTERNAL, "the stored secret is not in berth's sealed format");
	size_t cap = (slen - plen) / 4 * 3 + 3, blen = 0;
	unsigned char *box = xmalloc(cap);
	int rc = -1;
	unsigned char *m = NULL;
	size_t mlen = 0;
	if (sodium_base642bin(box, cap, sealed + plen, slen - plen, NULL, &blen, NULL,
			      sodium_base64_VARIANT_ORIGINAL) < 0 ||
	    blen < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + 1) {
		err_set(e, ERR_INTERNAL, "the stored secret is not in berth's sealed format");
		goto out;
	}
	mlen = blen - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES;
	m = xmalloc(mlen);
	if (crypto_secretbox_open_easy(m, box + crypto_secretbox_NONCEBYTES,
				       blen - crypto_secretbox_NONCEBYTES, box, key->k) < 0) {
		err_set(e, ERR_INTERNAL, "a stored secret does not open: it was altered, or sealed "
			"with another data dir's " SECRET_KEY_FILE);
		goto out;
	}
	if (m[0] != clen || mlen < 1 + clen || memcmp(m + 1, context, clen)) {
		err_set(e, ERR_INTERNAL, "a stored secret belongs to another record than %s", context);
		goto out;
	}
	buf_grow(out, mlen);   /* one allocation: no realloc leaves a plaintext copy behind */
	buf_add(out, m + 1 + clen, mlen - 1 - clen);
	rc = 0;
out:
	if (m) {
		sodium_memzero(m, mlen);
		free(m);
	}
	free(box);
	return rc;
}
