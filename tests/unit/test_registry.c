/* test_registry: secrets at rest and registry credentials, without a network.
 *  - util/secret: a sealed value opens to the same bytes (empty, short, 16 KiB, binary);
 *    two seals of one value differ (a fresh nonce each); a flipped byte anywhere, another
 *    key, another context, a truncated or non-base64 text are all refused; the key file is
 *    made 0600 in a 0700 dir, made once (a second load reads the same key), and refused
 *    when others may read it, when it has the wrong size, or when it is a symlink.
 *  - registry/ref: hosts as a user writes them, image references to registry hosts by
 *    Docker's rule, loopback hosts, WWW-Authenticate challenges (the nasty ones included).
 *  - registry/creds over a real store: the stored record and the list never hold the
 *    password, X-Registry-Auth decodes to the credentials, nothing stored means NULL,
 *    a sealed password moved to another host's record does not open, logout removes.
 *  - server.yaml registries.insecure. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "manifest/manifest.h"
#include "model/model.h"
#include "registry/registry.h"
#include "store/store.h"
#include "util/fsutil.h"
#include "util/secret.h"

static char *tmpdir(void)
{
	char *d = xstrdup("/tmp/berth-test-registry.XXXXXX");
	assert_non_null(mkdtemp(d));
	return d;
}

static void rmdir_all(char *d)
{
	struct err e = ERR_INIT;
	assert_int_equal(fs_rm_rf(d, &e), 0);
	free(d);
}

/* ---- util/secret ---- */

static void test_seal_open_round_trip(void **state)
{
	char *dir = tmpdir();
	struct secret_key k;
	struct err e = ERR_INIT;
	assert_int_equal(secret_key_load(dir, &k, &e), 0);
	size_t sizes[] = {0, 1, 7, 100, 16384};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		unsigned char *plain = malloc(sizes[i] + 1);
		for (size_t j = 0; j < sizes[i]; j++)
			plain[j] = (unsigned char)(j * 31 + i);   /* binary, NULs included */
		char *s1 = secret_seal(&k, "registry:ghcr.io", plain, sizes[i]);
		char *s2 = secret_seal(&k, "registry:ghcr.io", plain, sizes[i]);
		assert_non_null(s1);
		assert_non_null(s2);
		assert_true(!strncmp(s1, "v1:", 3));
		assert_string_not_equal(s1, s2);   /* a fresh nonce per value */
		struct buf out = BUF_INIT;
		assert_int_equal(secret_open(&k, "registry:ghcr.io", s1, &out, &e), 0);
		assert_int_equal(out.len, sizes[i]);
		assert_true(sizes[i] == 0 || !memcmp(out.p, plain, sizes[i]));
		secret_buf_wipe(&out);
		assert_null(out.p);
		free(s1);
		free(s2);
		free(plain);
	}
	assert_null(secret_seal(&k, "", "x", 1));                /* a context is required */
	char longctx[300];
	memset(longctx, 'c', sizeof longctx - 1);
	longctx[sizeof longctx - 1] = 0;
	assert_null(secret_seal(&k, longctx, "x", 1));
	secret_key_wipe(&k);
	rmdir_all(dir);
}

static void test_tampered_refused(void **state)
{
	char *dir = tmpdir(), *dir2 = tmpdir();
	struct secret_key k, other;
	struct err e = ERR_INIT;
	assert_int_equal(secret_key_load(dir, &k, &e), 0);
	assert_int_equal(secret_key_load(dir2, &other, &e), 0);
	assert_memory_not_equal(k.k, other.k, sizeof k.k);
	const char *pw = "hunter2-correct-horse";
	char *sealed = secret_seal(&k, "registry:a.example", pw, strlen(pw));
	assert_non_null(sealed);

	/* Decode, flip one bit of every byte in turn (nonce, MAC, context, secret), re-encode. */
	const char *b64 = sealed + 3;
	unsigned char bin[512];
	size_t n = 0;
	assert_int_equal(sodium_base642bin(bin, sizeof bin, b64, strlen(b64), NULL, &n, NULL,
					   sodium_base64_VARIANT_ORIGINAL), 0);
	for (size_t i = 0; i < n; i++) {
		bin[i] ^= 0x04;
		char text[1024] = "v1:";
		sodium_bin2base64(text + 3, sizeof text - 3, bin, n, sodium_base64_VARIANT_ORIGINAL);
		struct buf out = BUF_INIT;
		err_clear(&e);
		assert_int_equal(secret_open(&k, "registry:a.example", text, &out, &e), -1);
		assert_int_equal(out.len, 0);
		assert_non_null(strstr(e.msg, "altered"));
		bin[i] ^= 0x04;
	}
	struct buf out = BUF_INIT;
	assert_int_equal(secret_open(&other, "registry:a.example", sealed, &out, &e), -1);   /* another key */
	assert_int_equal(secret_open(&k, "registry:b.example", sealed, &out, &e), -1);       /* another record */
	assert_non_null(strstr(e.msg, "another record"));
	assert_null(strstr(e.msg, pw));
	/* Malformed texts. */
	const char *bad[] = {"", "v1:", "v2:AAAA", "AAAA", "v1:!!!!", "v1:AAAA", "v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err_clear(&e);
		assert_int_equal(secret_open(&k, "registry:a.example", bad[i], &out, &e), -1);
		assert_true(e.msg[0]);
	}
	/* A truncated text. */
	sealed[strlen(sealed) - 6] = 0;
	assert_int_equal(secret_open(&k, "registry:a.example", sealed, &out, &e), -1);
	assert_int_equal(out.len, 0);
	buf_free(&out);
	free(sealed);
	secret_key_wipe(&k);
	secret_key_wipe(&other);
	rmdir_all(dir);
	rmdir_all(dir2);
}

static void test_key_file(void **state)
{
	char *dir = tmpdir();
	struct secret_key k1, k2;
	struct err e = ERR_INIT;
	assert_int_equal(secret_key_load(dir, &k1, &e), 0);
	char *kdir = xasprintf("%s/keys", dir), *path = xasprintf("%s/" SECRET_KEY_FILE, dir);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_size, SECRET_KEY_BYTES);
	assert_int_equal(stat(kdir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	/* Made once: a second load reads the same key, and no temp file is left behind. */
	assert_int_equal(secret_key_load(dir, &k2, &e), 0);
	assert_memory_equal(k1.k, k2.k, sizeof k1.k);
	struct buf b = BUF_INIT;
	assert_int_equal(fs_read_file(path, &b, 0, &e), 0);
	assert_memory_equal(b.p, k1.k, sizeof k1.k);
	secret_buf_wipe(&b);
	char *probe = xasprintf("ls -A %s | wc -l | grep -qx 1", kdir);
	assert_int_equal(system(probe), 0);
	free(probe);

	/* Readable by others: refused, and the message says what to do. */
	assert_int_equal(chmod(path, 0644), 0);
	err_clear(&e);
	assert_int_equal(secret_key_load(dir, &k2, &e), -1);
	assert_non_null(strstr(e.msg, "chmod 600"));
	assert_int_equal(chmod(path, 0600), 0);
	/* The wrong size: refused (a damaged key is never used, nor replaced). */
	assert_int_equal(truncate(path, 16), 0);
	assert_int_equal(secret_key_load(dir, &k2, &e), -1);
	assert_non_null(strstr(e.msg, "32 bytes"));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 16);
	/* A symlink in its place: refused. */
	assert_int_equal(unlink(path), 0);
	char *target = xasprintf("%s/elsewhere", dir);
	int fd = open(target, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, k1.k, sizeof k1.k), (ssize_t)sizeof k1.k);
	close(fd);
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(secret_key_load(dir, &k2, &e), -1);
	free(target);
	free(kdir);
	free(path);
	secret_key_wipe(&k1);
	secret_key_wipe(&k2);
	rmdir_all(dir);
}

/* ---- registry/ref ---- */

static void test_host_normalize(void **state)
{
	static const struct {
		const char *in, *want;   /* want NULL: refused */
	} cases[] = {
		{"ghcr.io", "ghcr.io"},
		{"GHCR.IO", "ghcr.io"},
		{"registry.example.com:5000", "registry.example.com:5000"},
		{"localhost", "localhost"},
		{"localhost:5000", "localhost:5000"},
		{"127.0.0.1:5000", "127.0.0.1:5000"},
		{"[::1]:5000", "[::1]:5000"},
		{"[fe80::1]", "[fe80::1]"},
		{"index.docker.io", "docker.io"},
		{"registry-1.docker.io", "docker.io"},
		{"docker.io", "docker.io"},
		{"a-b.c-d", "a-b.c-d"},
		{"", NULL},
		{"https://ghcr.io", NULL},
		{"ghcr.io/", NULL},
		{"ghcr.io/owner", NULL},
		{"a..b", NULL},
		{".a", NULL},
		{"a.", NULL},
		{"-a.example", NULL},
		{"a-.example", NULL},
		{"a_b.example", NULL},
		{"host:0", NULL},
		{"host:65536", NULL},
		{"host:", NULL},
		{"host:12a", NULL},
		{"host:5000:6000", NULL},
		{"[::1", NULL},
		{"[]", NULL},
		{"[zz::1]", NULL},
		{"[::1]x", NULL},
		{"a b", NULL},
		{"user@host", NULL},
		{"h\xc3\xa9.example", NULL},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char out[REGISTRY_HOST_MAX];
		struct err e = ERR_INIT;
		int r = registry_host_normalize(cases[i].in, out, &e);
		if (cases[i].want) {
			if (r != 0)
				fail_msg("%s: refused: %s", cases[i].in, e.msg);
			assert_string_equal(out, cases[i].want);
		} else {
			if (r != -1)
				fail_msg("%s: accepted as %s", cases[i].in, out);
			assert_int_equal(e.code, ERR_INVALID);
		}
	}
	char longname[400];
	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = 0;
	char out[REGISTRY_HOST_MAX];
	struct err e = ERR_INIT;
	assert_int_equal(registry_host_normalize(longname, out, &e), -1);
	for (size_t i = 63; i < sizeof longname - 1; i += 64)
		longname[i] = '.';
	assert_int_equal(registry_host_normalize(longname, out, &e), -1);   /* over 253 */
	assert_int_equal(registry_host_normalize(NULL, out, &e), -1);
}

static void test_ref_host(void **state)
{
	static const struct {
		const char *ref, *want;
	} cases[] = {
		{"redis", "docker.io"},
		{"redis:7", "docker.io"},
		{"redis@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "docker.io"},
		{"library/redis", "docker.io"},
		{"bitnami/redis:7.2", "docker.io"},
		{"docker.io/library/redis", "docker.io"},
		{"index.docker.io/library/redis", "docker.io"},
		{"registry-1.docker.io/x/y", "docker.io"},
		{"ghcr.io/owner/app:1.0", "ghcr.io"},
		{"GHCR.io/owner/app", "ghcr.io"},
		{"localhost/app", "localhost"},
		{"localhost:5000/app:dev", "localhost:5000"},
		{"127.0.0.1:5000/team/app@sha256:abc", "127.0.0.1:5000"},
		{"registry.example.com:5000/a/b/c", "registry.example.com:5000"},
		{"[::1]:5000/app", "[::1]:5000"},
		{"Upper/app", "upper"},                   /* upper case: a host, as Docker reads it */
		{"localhostx/app", "docker.io"},
		{"my-org/app", "docker.io"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char out[REGISTRY_HOST_MAX];
		struct err e = ERR_INIT;
		if (registry_host_of_ref(cases[i].ref, out, &e) != 0)
			fail_msg("%s: refused: %s", cases[i].ref, e.msg);
		if (strcmp(out, cases[i].want))
			fail_msg("%s: got %s, want %s", cases[i].ref, out, cases[i].want);
	}
	static const char *const bad[] = {"", "bad_host.example/app", "example.com:99999/app",
					  "http://example.com/app", "a..b/app", ":5000/app"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char out[REGISTRY_HOST_MAX];
		struct err e = ERR_INIT;
		if (registry_host_of_ref(bad[i], out, &e) != -1)
			fail_msg("%s: accepted as %s", bad[i], out);
		assert_true(e.msg[0]);
	}
}

static void test_loopback_and_urls(void **state)
{
	static const char *const yes[] = {"localhost", "localhost:5000", "127.0.0.1", "127.0.0.1:5000",
					  "127.1.2.3:80", "[::1]", "[::1]:5000"};
	static const char *const no[] = {"localhost.example.com", "localhostx", "128.0.0.1", "127.0.0",
					 "127.0.0.1.example.com", "127.0.0.1234", "127..0.1", "[::2]:5000",
					 "ghcr.io", "10.0.0.1:5000"};
	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
		if (!registry_host_is_loopback(yes[i]))
			fail_msg("%s: not loopback", yes[i]);
	for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
		if (registry_host_is_loopback(no[i]))
			fail_msg("%s: loopback", no[i]);
	char *u = registry_base_url("docker.io", false);
	assert_string_equal(u, "https://registry-1.docker.io");
	free(u);
	u = registry_base_url("127.0.0.1:5000", true);
	assert_string_equal(u, "http://127.0.0.1:5000");
	free(u);
	assert_string_equal(registry_server_address("docker.io"), "https://index.docker.io/v1/");
	assert_string_equal(registry_server_address("ghcr.io"), "ghcr.io");
}

static void test_challenge(void **state)
{
	struct registry_challenge c;
	assert_int_equal(registry_parse_challenge("Bearer realm=\"https://auth.docker.io/token\","
						  "service=\"registry.docker.io\",scope=\"repository:a/b:pull\"", &c), 0);
	assert_int_equal(c.scheme, REGISTRY_AUTH_BEARER);
	assert_string_equal(c.realm, "https://auth.docker.io/token");
	assert_string_equal(c.service, "registry.docker.io");
	assert_string_equal(c.scope, "repository:a/b:pull");

	assert_int_equal(registry_parse_challenge("Basic realm=\"berth-test\"", &c), 0);
	assert_int_equal(c.scheme, REGISTRY_AUTH_BASIC);
	assert_string_equal(c.realm, "berth-test");
	assert_string_equal(c.service, "");

	/* Case, spaces around '=' and after commas, token values, unknown params, escapes. */
	assert_int_equal(registry_parse_challenge("  bEaReR  realm = \"https://a/t?x=1\" ,  charset=UTF-8,"
						  "service=svc , scope=\"a\\\"b\\\\c\"", &c), 0);
	assert_int_equal(c.scheme, REGISTRY_AUTH_BEARER);
	assert_string_equal(c.realm, "https://a/t?x=1");
	assert_string_equal(c.service, "svc");
	assert_string_equal(c.scope, "a\"b\\c");

	/* Two challenges: the first one only. */
	assert_int_equal(registry_parse_challenge("Bearer realm=\"https://a/token\", Basic realm=\"b\"", &c), 0);
	assert_int_equal(c.scheme, REGISTRY_AUTH_BEARER);
	assert_string_equal(c.realm, "https://a/token");
	assert_int_equal(registry_parse_challenge("Basic", &c), 0);
	assert_int_equal(c.scheme, REGISTRY_AUTH_BASIC);
	assert_int_equal(registry_parse_challenge("Negotiate", &c), 0);
	assert_int_equal(c.scheme, REGISTRY_AUTH_OTHER);
	/* A repeated parameter keeps its first value. */
	assert_int_equal(registry_parse_challenge("Bearer realm=\"https://a\",realm=\"https://evil\"", &c), 0);
	assert_string_equal(c.realm, "https://a");

	static const char *const bad[] = {
		"", "   ", "\"Bearer\"", "Bearer realm=\"unterminated", "Bearer realm=", "Bearer realm=\"a\"x",
		"Bearer realm=\"a\x01\"", "Bearer realm=\"a\\", "Bearer,realm=\"a\";",
		"Be@rer realm=\"a\"", "Bearer realm=\"a\",=\"b\"",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (registry_parse_challenge(bad[i], &c) != -1)
			fail_msg("accepted: %s", bad[i]);
	/* A challenge followed by the start of another ends where that one starts. */
	assert_int_equal(registry_parse_challenge("Bearer realm=\"a\", Negotiate", &c), 0);
	assert_string_equal(c.realm, "a");

	/* Values longer than their field. */
	struct buf b = BUF_INIT;
	buf_adds(&b, "Bearer realm=\"https://a/");
	for (int i = 0; i < 1100; i++)
		buf_addc(&b, 'x');
	buf_adds(&b, "\"");
	assert_int_equal(registry_parse_challenge(b.p, &c), -1);
	buf_reset(&b);
	buf_adds(&b, "Bearer realm=\"https://a\",service=");
	for (int i = 0; i < 300; i++)
		buf_addc(&b, 's');
	assert_int_equal(registry_parse_challenge(b.p, &c), -1);
	buf_free(&b);
}

/* ---- registry/creds over a real store ---- */

struct fx {
	char *dir;
	struct store *st;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	f->dir = tmpdir();
	char *db = xasprintf("%s/state.db", f->dir);
	struct err e = ERR_INIT;
	f->st = store_open(db, &e);
	free(db);
	assert_non_null(f->st);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	store_close(f->st);
	rmdir_all(f->dir);
	free(f);
	return 0;
}

/* Decode an X-Registry-Auth value into its JSON object. */
static json_t *decode_auth(const char *v)
{
	unsigned char bin[4096];
	size_t n = 0;
	assert_int_equal(sodium_base642bin(bin, sizeof bin, v, strlen(v), NULL, &n, NULL,
					   sodium_base64_VARIANT_URLSAFE), 0);
	json_t *j = json_loadb((const char *)bin, n, 0, NULL);
	assert_non_null(j);
	return j;
}

static void test_creds(void **state)
{
	struct fx *f = *state;
	struct err e = ERR_INIT;
	const char *pw = "Pa55-\"quoted\"-\\back\\-\xc3\xa9-\n-secret";
	bool replaced = true;
	json_t *pub = registry_creds_put(f->st, f->dir, "127.0.0.1:5000", "alice", pw, "token admin", &replaced, &e);
	assert_non_null(pub);
	assert_false(replaced);
	assert_string_equal(json_string_value(json_object_get(pub, "username")), "alice");
	assert_null(json_object_get(pub, "sealed_password"));
	assert_null(json_object_get(pub, "password"));
	json_decref(pub);
	pub = registry_creds_put(f->st, f->dir, "docker.io", "bob", "hub-token", "token ci", NULL, &e);
	assert_non_null(pub);
	json_decref(pub);

	/* The store holds the password only sealed. */
	struct store_kv kv;
	assert_int_equal(store_get(f->st, MODEL_REGISTRY_PREFIX "127.0.0.1:5000", &kv, &e), 0);
	assert_null(strstr(kv.value, "Pa55"));
	assert_null(strstr(kv.value, "secret"));
	assert_non_null(strstr(kv.value, "\"sealed_password\":\"v1:"));
	store_kv_free(&kv);

	/* The list: hosts in order, no secret. */
	json_t *l = registry_creds_list(f->st, &e);
	assert_non_null(l);
	char *text = json_dumps(l, JSON_COMPACT);
	assert_null(strstr(text, "sealed"));
	assert_null(strstr(text, "Pa55"));
	assert_non_null(strstr(text, "\"host\":\"127.0.0.1:5000\",\"username\":\"alice\""));
	assert_non_null(strstr(text, "\"added_by\":\"token admin\""));
	free(text);
	assert_int_equal(json_array_size(json_object_get(l, "registries")), 2);
	json_decref(l);

	/* X-Registry-Auth for refs on each registry; nothing for one without credentials. */
	char *hv = NULL;
	assert_int_equal(registry_auth_for(f->st, f->dir, "127.0.0.1:5000/team/app:1", &hv, &e), 0);
	assert_non_null(hv);
	assert_null(strchr(hv, '+'));
	assert_null(strchr(hv, '/'));
	json_t *a = decode_auth(hv);
	assert_string_equal(json_string_value(json_object_get(a, "username")), "alice");
	assert_string_equal(json_string_value(json_object_get(a, "password")), pw);
	assert_string_equal(json_string_value(json_object_get(a, "serveraddress")), "127.0.0.1:5000");
	json_decref(a);
	secret_str_wipe(hv);
	assert_int_equal(registry_auth_for(f->st, f->dir, "redis:7", &hv, &e), 0);
	a = decode_auth(hv);
	assert_string_equal(json_string_value(json_object_get(a, "username")), "bob");
	assert_string_equal(json_string_value(json_object_get(a, "serveraddress")), "https://index.docker.io/v1/");
	json_decref(a);
	secret_str_wipe(hv);
	hv = (char *)"untouched";
	assert_int_equal(registry_auth_for(f->st, f->dir, "ghcr.io/o/app", &hv, &e), 0);
	assert_null(hv);
	assert_int_equal(registry_auth_for(f->st, f->dir, "", &hv, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);

	/* A sealed password moved to another host's record does not open there. */
	json_t *alice = model_get(f->st, MODEL_REGISTRY_PREFIX "127.0.0.1:5000", NULL, &e);
	json_t *bob = model_get(f->st, MODEL_REGISTRY_PREFIX "docker.io", NULL, &e);
	json_object_set(bob, "sealed_password", json_object_get(alice, "sealed_password"));
	char *val = model_dump(bob);
	assert_int_equal(store_put(f->st, MODEL_REGISTRY_PREFIX "docker.io", val, &e), 0);
	free(val);
	json_decref(alice);
	json_decref(bob);
	err_clear(&e);
	assert_int_equal(registry_auth_for(f->st, f->dir, "library/redis", &hv, &e), -1);
	assert_null(hv);
	assert_int_equal(e.code, ERR_INTERNAL);
	assert_non_null(strstr(e.msg, "docker.io"));
	assert_null(strstr(e.msg, "Pa55"));

	/* Replace, then log out. */
	replaced = false;
	pub = registry_creds_put(f->st, f->dir, "127.0.0.1:5000", "carol", "x", "token admin", &replaced, &e);
	assert_non_null(pub);
	assert_true(replaced);
	json_decref(pub);
	assert_int_equal(registry_creds_delete(f->st, "127.0.0.1:5000", &e), 0);
	assert_int_equal(registry_creds_delete(f->st, "127.0.0.1:5000", &e), -1);
	assert_int_equal(e.code, ERR_NOTFOUND);
	assert_int_equal(registry_auth_for(f->st, f->dir, "127.0.0.1:5000/team/app:1", &hv, &e), 0);
	assert_null(hv);
}

/* ---- server.yaml registries.insecure ---- */

static int load_conf(const char *dir, const char *yaml, struct server_conf *c, struct err *e)
{
	char *path = xasprintf("%s/server.yaml", dir);
	struct err we = ERR_INIT;
	assert_int_equal(fs_write_atomic(path, yaml, strlen(yaml), 0600, &we), 0);
	int r = server_conf_load(path, c, e);
	free(path);
	return r;
}

static void test_server_yaml(void **state)
{
	char *dir = tmpdir();
	struct server_conf c;
	struct err e = ERR_INIT;
	assert_int_equal(load_conf(dir, "registries:\n  insecure: [Reg.LAN:5000, \"[::1]:6000\", build-box]\n", &c, &e), 0);
	assert_int_equal(c.nregistry_insecure, 3);
	assert_string_equal(c.registry_insecure[0], "reg.lan:5000");
	assert_string_equal(c.registry_insecure[1], "[::1]:6000");
	assert_string_equal(c.registry_insecure[2], "build-box");
	server_conf_free(&c);
	assert_int_equal(load_conf(dir, "registries:\n", &c, &e), 0);
	assert_int_equal(c.nregistry_insecure, 0);
	server_conf_free(&c);
	static const struct {
		const char *yaml, *msg;
	} bad[] = {
		{"registries: [a]\n", "server.yaml:1:13: registries: expected a mapping (insecure:)"},
		{"registries:\n  secure: [a]\n", "server.yaml:2:3: "},
		{"registries:\n  insecure: reg.lan\n", "registries.insecure: expected a list"},
		{"registries:\n  insecure: [\"http://reg.lan\"]\n", "server.yaml:2:14: registries.insecure: expected a list of registry hosts"},
		{"registries:\n  insecure: [a b]\n", "registries.insecure"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err_clear(&e);
		assert_int_equal(load_conf(dir, bad[i].yaml, &c, &e), -1);
		if (!strstr(e.msg, bad[i].msg))
			fail_msg("%s: message %s, want %s", bad[i].yaml, e.msg, bad[i].msg);
	}
	rmdir_all(dir);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seal_open_round_trip),
		cmocka_unit_test(test_tampered_refused),
		cmocka_unit_test(test_key_file),
		cmocka_unit_test(test_host_normalize),
		cmocka_unit_test(test_ref_host),
		cmocka_unit_test(test_loopback_and_urls),
		cmocka_unit_test(test_challenge),
		cmocka_unit_test_setup_teardown(test_creds, setup, teardown),
		cmocka_unit_test(test_server_yaml),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
