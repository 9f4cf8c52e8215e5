/* Small bounded helpers shared by every program: string copies that cannot
 * overflow, integer parsing that checks everything, whole-file reads with a
 * cap, and full writes. */
#ifndef DE_UTIL_H
#define DE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define streq(a, b)   (strcmp((a), (b)) == 0)

/* Copies src into dst (size n > 0), always NUL-terminating. Returns strlen(src);
 * a return value >= n means the copy was truncated. */
size_t de_strlcpy(char *dst, const char *src, size_t n);

/* Strict decimal parsers: the whole string must be a number in range, no sign
 * for unsigned, no leading/trailing space. Return 0, -EINVAL or -ERANGE. */
int parse_u64(const char *s, uint64_t *ret);
int parse_i64(const char *s, int64_t *ret);
int parse_int(const char *s, int *ret);

/* Reads a whole file (relative to dirfd, or AT_FDCWD) into a new NUL-terminated
 * buffer of at most max bytes, setting *ret (caller frees) and *ret_len (may be
 * NULL). Returns 0 when the whole file was read; 1 when it was longer than max
 * and truncate_ok is true (the first max bytes are returned); -EFBIG when it was
 * longer and truncate_ok is false; -errno otherwise. */
int read_file_at(int dirfd, const char *path, size_t max, bool truncate_ok, char **ret,
                 size_t *ret_len);

/* The directory of this program's executable (/proc/self/exe without its
 * last component) into buf of n bytes. Returns 0, -errno when the link
 * cannot be read, -ENAMETOOLONG when it does not fit. */
int self_dir(char *buf, size_t n);

/* Writes all n bytes, retrying on EINTR and short writes. Returns 0 or -errno. */
int write_all(int fd, const void *buf, size_t n);

/* Returns a copy of s, or NULL when s is NULL or memory is short. */
char *strdup_or_null(const char *s);

/* Returns true when s is NULL or "". */
static inline bool
isempty(const char *s)
{
	return s == NULL || s[0] == '\0';
}

/* Lowercase hex of n bytes into out (2n+1 bytes). */
void hex_encode(const unsigned char *in, size_t n, char *out);

/* Returns a copy of the first n bytes of s with every byte sequence that is
 * not valid UTF-8 (and every NUL) replaced by '?', so the result is safe for
 * JSON and SQLite TEXT. NULL when memory is short. */
char *utf8_sanitize_dup(const char *s, size_t n);

/* True when the n bytes at s are valid UTF-8 without NULs. */
bool utf8_is_valid(const char *s, size_t n);

/* OWASP "CSV injection": true when the CSV cell s starts with = + - @ TAB or
 * CR and is not a plain decimal number ("-5", "+1.25", "3e-7"), i.e. a
 * spreadsheet would read it as a formula. The CSV writers (the stdout sink,
 * daemoneye-cli --format csv) then quote it behind a single quote. */
bool csv_formula_risk(const char *s);

#endif
