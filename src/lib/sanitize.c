#include "sanitize.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cleanup.h"
#include "util.h"

/* Flags whose following value is secret. long_only marks those also honoured
 * inside embedded shell scripts and in --flag=value form. */
static const struct {
	const char *flag;
	bool long_form;
} secret_flags[] = {
	{ "--password", true }, { "--secret", true }, { "--token", true }, { "--api-key", true },
	{ "-p", false },        { "-s", false },      { "-t", false },     { "-k", false },
};

static const char *const secret_env_words[] = {
	"PASSWORD", "SECRET", "TOKEN", "KEY", "API_KEY", "AUTH",
};

static const char *const secret_paths[] = {
	".ssh/", ".aws/", ".gnupg/", ".kube/config", ".docker/config",
};

/* A growing output string; on allocation failure it records the error and
 * stops growing. */
struct sbuf {
	char *s;
	size_t len, cap;
	bool oom;
};

static void
sbuf_add(struct sbuf *b, const char *p, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t ncap = b->cap ? b->cap : 64;
		char *ns;

		while (ncap < b->len + n + 1)
			ncap *= 2;
		if ((ns = realloc(b->s, ncap)) == NULL) {
			b->oom = true;
			return;
		}
		b->s = ns;
		b->cap = ncap;
	}
	memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void
sbuf_adds(struct sbuf *b, const char *s)
{
	sbuf_add(b, s, strlen(s));
}

bool
sanitize_path_is_secret(const char *path)
{
	if (path == NULL)
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(secret_paths); i++) {
		const char *hit = strstr(path, secret_paths[i]);
		size_t plen = strlen(secret_paths[i]);

		/* Must start a path component: "/.ssh/" or at the start. */
		for (; hit != NULL; hit = strstr(hit + 1, secret_paths[i]))
			if (hit == path || hit[-1] == '/' || hit[-1] == '=' || hit[-1] == '~')
				return true;
		/* A bare ".ssh" directory (no trailing slash) is secret too. */
		if (secret_paths[i][plen - 1] == '/') {
			size_t dlen = plen - 1, l = strlen(path);

			if (l >= dlen && strncmp(path + l - dlen, secret_paths[i], dlen) == 0 &&
			    (l == dlen || path[l - dlen - 1] == '/'))
				return true;
		}
	}
	return false;
}

char *
sanitize_path(const char *path)
{
	if (path == NULL)
		return NULL;
	return strdup(sanitize_path_is_secret(path) ? SANITIZE_REDACTED : path);
}

bool
sanitize_env_name_is_secret(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(secret_env_words); i++)
		if (strcasestr(name, secret_env_words[i]) != NULL)
			return true;
	return false;
}

/* Returns the index of the secret flag that word is, or -1. With eq_ret, also
 * matches "--flag=value" (long forms only) and sets *eq_ret to the '='. */
static int
match_flag(const char *word, size_t len, bool long_only, const char **eq_ret)
{
	for (size_t i = 0; i < ARRAY_SIZE(secret_flags); i++) {
		size_t fl = strlen(secret_flags[i].flag);

		if (long_only && !secret_flags[i].long_form)
			continue;
		if (len == fl && strncmp(word, secret_flags[i].flag, fl) == 0)
			return (int)i;
		if (eq_ret != NULL && secret_flags[i].long_form && len > fl &&
		    strncmp(word, secret_flags[i].flag, fl) == 0 && word[fl] == '=') {
			*eq_ret = word + fl;
			return (int)i;
		}
	}
	return -1;
}

/* The '=' of a word that assigns an environment variable ("NAME=value",
 * NAME a shell variable name), or NULL. */
static const char *
env_assignment(const char *w, size_t len)
{
	size_t i = 0;

	if (len == 0 || !(isalpha((unsigned char)w[0]) || w[0] == '_'))
		return NULL;
	while (i < len && (isalnum((unsigned char)w[i]) || w[i] == '_'))
		i++;
	return i < len && w[i] == '=' ? w + i : NULL;
}

/* Whether the variable assigned up to eq has a name that says secret. */
static bool
env_word_is_secret(const char *w, const char *eq)
{
	size_t n = (size_t)(eq - w);
	char small[64];
	_cleanup_free_ char *big = NULL;

	if (n < sizeof(small)) {
		memcpy(small, w, n);
		small[n] = '\0';
		return sanitize_env_name_is_secret(small);
	}
	big = strndup(w, n);
	return big == NULL || sanitize_env_name_is_secret(big); /* cannot look: hide it */
}

/* Appends one word (a top-level argument or a word of an embedded script),
 * deciding whether it or its value is secret. *redact_next carries "the
 * previous word was a secret flag" across calls. */
static void
add_word(struct sbuf *b, const char *w, size_t len, bool long_only, bool *redact_next)
{
	const char *eq = NULL;
	_cleanup_free_ char *copy = NULL;

	if (*redact_next) {
		*redact_next = false;
		sbuf_adds(b, SANITIZE_REDACTED);
		return;
	}
	if (match_flag(w, len, long_only, &eq) >= 0) {
		if (eq != NULL) {
			sbuf_add(b, w, (size_t)(eq - w) + 1);
			sbuf_adds(b, SANITIZE_REDACTED);
		} else {
			sbuf_add(b, w, len);
			*redact_next = true;
		}
		return;
	}
	/* `env DB_PASSWORD=… cmd`, `sh -c "TOKEN=… tool"`: the value goes. */
	if ((eq = env_assignment(w, len)) != NULL && env_word_is_secret(w, eq)) {
		sbuf_add(b, w, (size_t)(eq - w) + 1);
		sbuf_adds(b, SANITIZE_REDACTED);
		return;
	}
	if ((copy = strndup(w, len)) == NULL) {
		b->oom = true;
		return;
	}
	if (sanitize_path_is_secret(copy)) {
		const char *e = strchr(copy, '=');

		if (copy[0] == '-' && e != NULL && !sanitize_path_is_secret(e + 1)) {
			/* The secret part is before '=': hide the whole word. */
			sbuf_adds(b, SANITIZE_REDACTED);
		} else if (copy[0] == '-' && e != NULL) {
			sbuf_add(b, copy, (size_t)(e - copy) + 1);
			sbuf_adds(b, SANITIZE_REDACTED);
		} else {
			sbuf_adds(b, SANITIZE_REDACTED);
		}
		return;
	}
	sbuf_add(b, w, len);
}

/* Sanitizes the words of an embedded shell script, keeping its spacing. */
static void
add_script(struct sbuf *b, const char *arg)
{
	bool redact_next = false;
	const char *p = arg;

	while (*p) {
		size_t sp = strspn(p, " \t\n"), wl;

		sbuf_add(b, p, sp);
		p += sp;
		wl = strcspn(p, " \t\n");
		if (wl > 0)
			add_word(b, p, wl, true, &redact_next);
		p += wl;
	}
}

int
sanitize_argv(const char *const *argv, size_t argc, char **ret)
{
	struct sbuf b = { 0 };
	bool redact_next = false;

	sbuf_add(&b, "", 0);
	for (size_t i = 0; i < argc; i++) {
		const char *a = argv[i] ? argv[i] : "";

		if (i > 0)
			sbuf_add(&b, " ", 1);
		if (!redact_next && strpbrk(a, " \t\n") != NULL && a[0] != '-')
			add_script(&b, a);
		else
			add_word(&b, a, strlen(a), false, &redact_next);
	}
	if (b.oom) {
		free(b.s);
		return -ENOMEM;
	}
	*ret = b.s;
	return 0;
}

int
sanitize_cmdline_raw(const char *buf, size_t len, char **ret)
{
	_cleanup_free_ char *copy = NULL;
	_cleanup_free_ const char **argv = NULL;
	size_t argc = 0, n = 0;

	while (len > 0 && buf[len - 1] == '\0')
		len--;
	if ((copy = malloc(len + 1)) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];

		copy[i] = c == '\0'                                           ? '\0'
		          : (c < 0x20 && c != '\t' && c != '\n') || c == 0x7f ? '?'
		                                                              : (char)c;
		if (c == '\0')
			n++;
	}
	copy[len] = '\0';
	if ((argv = calloc(n + 1, sizeof(*argv))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i <= len && len > 0; i++) {
		if (i == 0 || copy[i - 1] == '\0')
			argv[argc++] = copy + i;
		if (argc > n)
			break;
	}
	return sanitize_argv(argv, argc, ret);
}
