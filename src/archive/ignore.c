/* archive/ignore: parse gitignore-syntax files into compiled patterns and match paths against
 * them (contract in ignore.h). Owns the rule set; reads no files.
 *
 * A pattern compiles to a token list (literal byte, '?', class, '*', "**" forms) that is run
 * as an NFA: the set of "the first i tokens have matched" states, advanced one path byte at a
 * time. git's wildmatch backtracks, and "*a*a*a...b" costs it time exponential in the number
 * of '*'s; here a match is at most (tokens + 1) x path bytes steps, with no recursion, and
 * no allocation for patterns of up to 128 tokens. */
#include "archive/ignore.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "util/buf.h"

enum tok_kind {
	T_LIT,    /* one byte, equal to ch */
	T_ANY,    /* '?': one byte but '/' */
	T_CLASS,  /* [...]: one byte in the class (never '/') */
	T_STAR,   /* '*': any run of bytes without '/' */
	T_DSTAR,  /* trailing "/" + "**" (or "**" alone): any run of bytes, '/' included */
	T_DIRS,   /* "**" + "/" at the start or after a '/': zero or more whole directories */
	T_DIRS_IN /* ("dir/")*, as two NFA states: T_DIRS between directories, T_DIRS_IN in one */
};

struct tok {
	uint8_t kind;
	uint8_t ch;        /* T_LIT */
	uint32_t cls;      /* T_CLASS: index into pat.classes */
};

struct cls {
	uint64_t bits[4];
};

enum {
	P_NEGATE = 1,    /* '!' */
	P_DIRONLY = 2,   /* trailing '/' */
	P_BASENAME = 4,  /* no '/' in the pattern: matches the last component at any depth */
};

struct pat {
	unsigned flags;
	struct tok *toks;
	size_t ntok;
	struct cls *classes;
	size_t nclass;
	bool literal;    /* only T_LIT tokens: compare bytes, no NFA */
	char *lit;       /* the literal bytes when literal */
};

struct ifile {
	char *base;      /* "" or "a/b" */
	size_t baselen;
	struct pat *pats;
	size_t npat;
};

struct ignore {
	struct ifile *files;
	size_t nfiles, cap;
};

/* ---- compiling one pattern ---- */

static void cls_add(struct cls *c, unsigned ch)
{
	c->bits[ch >> 6] |= (uint64_t)1 << (ch & 63);
}

static bool cls_has(const struct cls *c, unsigned ch)
{
	return c->bits[ch >> 6] >> (ch & 63) & 1;
}

/* The [:name:] classes, in the C locale's ASCII meaning. */
static bool posix_class(const char *name, size_t len, struct cls *c)
{
	static const char *const names[] = {
		"alnum", "alpha", "blank", "cntrl", "digit", "graph",
		"lower", "print", "punct", "space", "upper", "xdigit",
	};
	size_t k;
	for (k = 0; k < sizeof names / sizeof names[0]; k++)
		if (strlen(names[k]) == len && !memcmp(names[k], name, len))
			break;
	if (k == sizeof names / sizeof names[0])
		return false;
	for (unsigned ch = 0; ch < 128; ch++) {
		bool upper = ch >= 'A' && ch <= 'Z', lower = ch >= 'a' && ch <= 'z';
		bool digit = ch >= '0' && ch <= '9', alpha = upper || lower;
		bool graph = ch > 32 && ch < 127;
		bool in = false;
		switch (k) {
		case 0: in = alpha || digit; break;
		case 1: in = alpha; break;
		case 2: in = ch == ' ' || ch == '\t'; break;
		case 3: in = ch < 32 || ch == 127; break;
		case 4: in = digit; break;
		case 5: in = graph; break;
		case 6: in = lower; break;
		case 7: in = graph || ch == ' '; break;
		case 8: in = graph && !alpha && !digit; break;
		case 9: in = ch == ' ' || (ch >= '\t' && ch <= '\r'); break;
		case 10: in = upper; break;
		case 11: in = digit || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F'); break;
		}
		if (in)
			cls_add(c, ch);
	}
	return true;
}

/* Parse the class starting at p[*i] == '[' into c, following wildmatch's reading exactly
 * (']' first is a member, '-' between two members is a range, '\' escapes, "[:x:]" names a
 * class). Returns false when wildmatch would give up on the whole pattern: unterminated,
 * '\' at the end, an unknown class name. On success *i is just past the closing ']'. */
static bool parse_class(const unsigned char *p, size_t len, size_t *i, struct cls *c)
{
	size_t j = *i + 1;
	bool negated = false;
	memset(c, 0, sizeof *c);
	if (j < len && (p[j] == '!' || p[j] == '^')) {
		negated = true;
		j++;
	}
	unsigned prev = 0;   /* the last single member, 0 after a range or class (no range start) */
	for (bool first = true;; first = false, j++) {
		if (j >= len)
			return false;
		unsigned ch = p[j];
		if (ch == ']' && !first)
			break;
		if (ch == '\\') {
			if (++j >= len)
				return false;
			ch = p[j];
			cls_add(c, ch);
			prev = ch;
		} else if (ch == '-' && prev && j + 1 < len && p[j + 1] != ']') {
			ch = p[++j];
			if (ch == '\\') {
				if (++j >= len)
					return false;
				ch = p[j];
			}
			for (unsigned x = prev; x <= ch; x++)
				cls_add(c, x);
			prev = 0;
		} else if (ch == '[' && j + 1 < len && p[j + 1] == ':') {
			size_t s = j + 2, k = s;
			while (k < len && p[k] != ']')
				k++;
			if (k >= len)
				return false;
			if (k == s || p[k - 1] != ':') {
				cls_add(c, '[');   /* not a [:name:] after all: '[' is a member */
				prev = '[';
				continue;
			}
			if (!posix_class((const char *)p + s, k - s - 1, c))
				return false;
			prev = 0;
			j = k;
		} else {
			cls_add(c, ch);
			prev = ch;
		}
	}
	if (negated)
		for (int w = 0; w < 4; w++)
			c->bits[w] = ~c->bits[w];
	c->bits['/' >> 6] &= ~((uint64_t)1 << ('/' & 63));
	*i = j + 1;
	return true;
}

static void pat_clear(struct pat *pt)
{
	free(pt->toks);
	free(pt->classes);
	free(pt->lit);
	memset(pt, 0, sizeof *pt);
}

/* Compile p[0..len) (no '!', no trailing '/', no anchoring '/') into pt. Returns false for a
 * pattern that can never match (see parse_class; also a trailing '\').
 * lead: where a "**" also counts as starting the pattern, besides 0 (see parse_line). */
static bool compile(const unsigned char *p, size_t len, size_t lead, struct pat *pt)
{
	pt->toks = xmalloc((len + 1) * sizeof *pt->toks);
	pt->ntok = 0;
	size_t ccap = 0;
	for (size_t i = 0; i < len;) {
		struct tok t = { .kind = T_LIT };
		unsigned char ch = p[i];
		if (ch == '\\') {
			if (i + 1 >= len)
				return false;
			t.ch = p[i + 1];
			i += 2;
		} else if (ch == '?') {
			t.kind = T_ANY;
			i++;
		} else if (ch == '*') {
			size_t s = i;
			while (i < len && p[i] == '*')
				i++;
			t.kind = T_STAR;
			/* "**" crosses '/' only as a whole component: at the start or after
			 * a '/', and at the end or before a '/'; elsewhere it is '*'. Before a
			 * plain '/' it may also match nothing, that '/' included ("a/" "**" "/b"
			 * matches "a/b"), so it becomes T_DIRS + T_DIRS_IN, which take the '/'
			 * along. Before an escaped '/' wildmatch offers no such shortcut:
			 * "anything", then the '/'. */
			bool starts = s == 0 || s == lead || p[s - 1] == '/';
			bool ends = i == len || p[i] == '/' ||
				    (p[i] == '\\' && i + 1 < len && p[i + 1] == '/');
			if (i - s >= 2 && starts && ends) {
				t.kind = T_DSTAR;
				if (i < len && p[i] == '/') {
					i++;
					/* ("dir/")* twice in a row is ("dir/")* once */
					if (pt->ntok && pt->toks[pt->ntok - 1].kind == T_DIRS_IN)
						continue;
					pt->toks[pt->ntok++] = (struct tok){ .kind = T_DIRS };
					t.kind = T_DIRS_IN;
				}
			}
		} else if (ch == '[') {
			if (pt->nclass == ccap) {
				ccap = ccap ? 2 * ccap : 4;
				pt->classes = xrealloc(pt->classes, ccap * sizeof *pt->classes);
			}
			if (!parse_class(p, len, &i, &pt->classes[pt->nclass]))
				return false;
			t.kind = T_CLASS;
			t.cls = (uint32_t)pt->nclass++;
		} else {
			t.ch = ch;
			i++;
		}
		pt->toks[pt->ntok++] = t;
	}
	pt->literal = true;
	for (size_t k = 0; k < pt->ntok; k++)
		pt->literal &= pt->toks[k].kind == T_LIT;
	if (pt->literal) {
		pt->lit = xmalloc(pt->ntok + 1);
		for (size_t k = 0; k < pt->ntok; k++)
			pt->lit[k] = (char)pt->toks[k].ch;
	}
	return true;
}

/* ---- running one pattern ---- */

/* A set of NFA states (0..ntok: "the first i tokens have matched"): a list to visit only the
 * live ones, and a mark per state to add each once. */
struct set {
	uint32_t *list;
	uint8_t *in;
	size_t len;
};

static void set_add(struct set *s, size_t i)
{
	if (!s->in[i]) {
		s->in[i] = 1;
		s->list[s->len++] = (uint32_t)i;
	}
}

/* Follow the empty moves: '*' and "**" may match nothing, and between two directories of
 * "**" + "/" the match may go on into another directory or past the whole construct. The
 * list is the work queue: states added here are visited in turn. */
static void closure(const struct pat *pt, struct set *s)
{
	for (size_t k = 0; k < s->len; k++) {
		size_t i = s->list[k];
		if (i == pt->ntok)
			continue;
		switch (pt->toks[i].kind) {
		case T_STAR:
		case T_DSTAR:
			set_add(s, i + 1);
			break;
		case T_DIRS:
			set_add(s, i + 1);
			set_add(s, i + 2);
			break;
		}
	}
}

static bool pat_run(const struct pat *pt, const char *text, size_t m)
{
	if (pt->literal)
		return m == pt->ntok && !memcmp(pt->lit, text, m);
	enum { SMALL = 128 };
	size_t n = pt->ntok;
	const struct cls *cls = pt->classes;
	uint32_t lists[2 * (SMALL + 1)];
	uint8_t marks[2 * (SMALL + 1)];
	uint32_t *lmem = n <= SMALL ? lists : xmalloc(2 * (n + 1) * sizeof *lmem);
	uint8_t *mmem = n <= SMALL ? marks : xmalloc(2 * (n + 1));
	memset(mmem, 0, 2 * (n + 1));
	struct set a = { lmem, mmem, 0 }, b = { lmem + n + 1, mmem + n + 1, 0 };
	struct set *cur = &a, *nxt = &b;
	set_add(cur, 0);
	closure(pt, cur);
	for (size_t j = 0; j < m && cur->len; j++) {
		unsigned char c = (unsigned char)text[j];
		for (size_t k = 0; k < cur->len; k++) {
			size_t i = cur->list[k];
			cur->in[i] = 0;
			if (i == n)
				continue;   /* the whole pattern matched, but text is left */
			const struct tok *t = &pt->toks[i];
			switch (t->kind) {
			case T_LIT:     if (c == t->ch) set_add(nxt, i + 1); break;
			case T_ANY:     if (c != '/') set_add(nxt, i + 1); break;
			case T_CLASS:   if (cls_has(cls + t->cls, c)) set_add(nxt, i + 1); break;
			case T_STAR:    if (c != '/') set_add(nxt, i); break;
			case T_DSTAR:   set_add(nxt, i); break;
			case T_DIRS:    break;   /* empty moves only */
			case T_DIRS_IN: set_add(nxt, c == '/' ? i - 1 : i); break;
			}
		}
		cur->len = 0;
		struct set *tmp = cur;
		cur = nxt;
		nxt = tmp;
		closure(pt, cur);
	}
	bool ok = cur->in[n];
	if (lmem != lists) {
		free(lmem);
		free(mmem);
	}
	return ok;
}

bool ignore_wildmatch(const char *pat, size_t plen, const char *text, size_t tlen)
{
	struct pat pt = { 0 };
	bool ok = compile((const unsigned char *)pat, plen, 0, &pt) && pat_run(&pt, text, tlen);
	pat_clear(&pt);
	return ok;
}

/* ---- files of patterns ---- */

struct ignore *ignore_new(void)
{
	return xcalloc(1, sizeof(struct ignore));
}

static void file_clear(struct ifile *f)
{
	for (size_t i = 0; i < f->npat; i++)
		pat_clear(&f->pats[i]);
	free(f->pats);
	free(f->base);
}

void ignore_free(struct ignore *ig)
{
	if (!ig)
		return;
	ignore_rewind(ig, 0);
	free(ig->files);
	free(ig);
}

size_t ignore_mark(const struct ignore *ig)
{
	return ig->nfiles;
}

void ignore_rewind(struct ignore *ig, size_t mark)
{
	while (ig->nfiles > mark)
		file_clear(&ig->files[--ig->nfiles]);
}

/* git's trailing-space rule: drop trailing ' ' unless the last one is escaped by '\'. */
static size_t trim_trailing_spaces(const char *s, size_t len)
{
	size_t keep = len;      /* length up to (not including) the trailing run of spaces */
	bool in_run = false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == ' ') {
			if (!in_run)
				keep = i;
			in_run = true;
		} else {
			in_run = false;
			if (s[i] == '\\' && ++i >= len)
				return len;  /* a lone '\' at the end: keep everything */
		}
	}
	return in_run ? keep : len;
}

/* Parse one non-comment line into pt. Returns 1 when it holds a pattern, 0 when there is
 * nothing to match (an empty pattern, or one that can never match). */
static int parse_line(const char *s, size_t len, struct pat *pt)
{
	memset(pt, 0, sizeof *pt);
	if (len && s[0] == '!') {
		pt->flags |= P_NEGATE;
		s++;
		len--;
	}
	if (len && s[len - 1] == '/') {
		pt->flags |= P_DIRONLY;
		len--;
	}
	size_t lead = 0;
	if (!memchr(s, '/', len)) {
		pt->flags |= P_BASENAME;
	} else {
		if (s[0] == '/') {
			s++;
			len--;
		}
		/* git compares an anchored pattern's literal head itself and hands only the
		 * rest to wildmatch, so a "**" right after that head counts as the pattern's
		 * start: "foo" "**" "/bar" matches "foox/y/bar" and "foobar". Copied, to agree
		 * with git. */
		while (lead < len && !strchr("*?[\\", s[lead]))
			lead++;
	}
	if (!len)
		return 0;
	if (!compile((const unsigned char *)s, len, lead, pt)) {
		pat_clear(pt);
		return 0;
	}
	return 1;
}

int ignore_add_file(struct ignore *ig, const char *base, const char *fname, const char *data,
		    size_t n, struct err *e)
{
	if (n > IGNORE_MAX_FILE)
		return err_set(e, ERR_TOOBIG, "%s: ignore file is larger than %d bytes", fname,
			       IGNORE_MAX_FILE);
	struct ifile f = { 0 };
	size_t cap = 0;
	size_t i = 0;
	if (n >= 3 && !memcmp(data, "\xef\xbb\xbf", 3))
		i = 3;
	for (unsigned line = 1; i < n; line++) {
		const char *s = data + i;
		const char *nl = memchr(s, '\n', n - i);
		size_t len = nl ? (size_t)(nl - s) : n - i;
		i += len + 1;
		if (memchr(s, 0, len)) {
			file_clear(&f);
			return err_set(e, ERR_INVALID, "%s:%u: NUL byte in an ignore file", fname,
				       line);
		}
		if (len && s[len - 1] == '\r')
			len--;
		if (!len || s[0] == '#')
			continue;
		len = trim_trailing_spaces(s, len);
		if (len > IGNORE_MAX_PATTERN) {
			file_clear(&f);
			return err_set(e, ERR_INVALID, "%s:%u: pattern longer than %d bytes", fname,
				       line, IGNORE_MAX_PATTERN);
		}
		if (f.npat == cap) {
			cap = cap ? 2 * cap : 8;
			f.pats = xrealloc(f.pats, cap * sizeof *f.pats);
		}
		if (parse_line(s, len, &f.pats[f.npat]))
			f.npat++;
	}
	size_t blen = strlen(base);
	while (blen && base[blen - 1] == '/')
		blen--;
	f.base = xstrndup(base, blen);
	f.baselen = blen;
	if (ig->nfiles == ig->cap) {
		ig->cap = ig->cap ? 2 * ig->cap : 4;
		ig->files = xrealloc(ig->files, ig->cap * sizeof *ig->files);
	}
	ig->files[ig->nfiles++] = f;
	return 0;
}

/* ---- matching paths ---- */

bool ignore_match_entry(const struct ignore *ig, const char *path, bool is_dir)
{
	size_t plen = strlen(path);
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;
	size_t namelen = plen - (size_t)(name - path);
	for (size_t fi = ig->nfiles; fi-- > 0;) {
		const struct ifile *f = &ig->files[fi];
		const char *rest = path;
		if (f->baselen) {
			if (plen <= f->baselen || path[f->baselen] != '/' ||
			    memcmp(path, f->base, f->baselen))
				continue;   /* not below this file's directory */
			rest = path + f->baselen + 1;
		}
		size_t restlen = plen - (size_t)(rest - path);
		for (size_t pi = f->npat; pi-- > 0;) {
			const struct pat *pt = &f->pats[pi];
			if ((pt->flags & P_DIRONLY) && !is_dir)
				continue;
			bool hit = pt->flags & P_BASENAME ? pat_run(pt, name, namelen)
							  : pat_run(pt, rest, restlen);
			if (hit)
				return !(pt->flags & P_NEGATE);
		}
	}
	return false;
}

bool ignore_match(const struct ignore *ig, const char *path, bool is_dir)
{
	if (!ig->nfiles)
		return false;
	char *p = xstrdup(path);
	bool hit = false;
	for (char *s = strchr(p, '/'); s && !hit; s = strchr(s + 1, '/')) {
		*s = 0;
		hit = *p && ignore_match_entry(ig, p, true);
		*s = '/';
	}
	if (!hit)
		hit = ignore_match_entry(ig, p, is_dir);
	free(p);
	return hit;
}
