/* The audit ledger: append and reopen, every kind of tampering named at the
 * right entry, torn-tail recovery, checkpoints and their signatures,
 * inclusion proofs, show and export. Each test works in its own temporary
 * directory. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <jansson.h>

#include "ledger.h"
#include "util.h"

#define MAGIC_LEN 8

struct fixture {
	char dir[64];
	char ldir[96];
	char entries[128];
	char ckpts[128];
	char pub[128];
};

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	de_strlcpy(f->dir, "/tmp/test-ledger-XXXXXX", sizeof(f->dir));
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->ldir, sizeof(f->ldir), "%s/ledger", f->dir);
	snprintf(f->entries, sizeof(f->entries), "%s/entries.log", f->ldir);
	snprintf(f->ckpts, sizeof(f->ckpts), "%s/checkpoints.log", f->ldir);
	snprintf(f->pub, sizeof(f->pub), "%s/ledger.pub", f->ldir);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* Writes a ledger of n entries (seq 0 is key.created) with a checkpoint
 * every `every` entries and, with close_ckpt, the final one at close. */
static void
make_ledger(const struct fixture *f, int n, uint64_t every)
{
	struct ledger *l = NULL;
	struct errbuf err = { { 0 } };
	struct ledger_policy p = { .checkpoint_every = every, .sync_each_append = false };

	assert_int_equal(ledger_open(f->ldir, LEDGER_RW, &l, &err), 0);
	assert_int_equal(ledger_set_policy(l, &p), 0);
	for (int i = 1; i < n; i++) {
		char payload[64];
		uint64_t seq = 0;
		int len =
		    snprintf(payload, sizeof(payload), "{\"i\":%d,\"pad\":\"%*s\"}", i, i % 7, "");

		assert_int_equal(ledger_append(l, "agent", i % 2 ? "alert.raised" : "rules.loaded",
		                               payload, (size_t)len, &seq),
		                 0);
		assert_int_equal(seq, (uint64_t)i);
	}
	ledger_close(l);
}

static void
verify_dir(const char *dir, const char *pub, struct ledger_report *rep)
{
	struct ledger *l = NULL;
	struct errbuf err = { { 0 } };

	assert_int_equal(ledger_open(dir, LEDGER_RO, &l, &err), 0);
	assert_int_equal(ledger_verify(l, pub, rep, &err), 0);
	ledger_close(l);
}

static char *
slurp(const char *path, size_t *len)
{
	char *buf = NULL;

	assert_int_equal(read_file_at(AT_FDCWD, path, 64 << 20, false, &buf, len), 0);
	return buf;
}

static void
spit(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, buf, len), 0);
	close(fd);
}

/* Offsets of every record in entries.log; offs[n] = file length. */
static size_t
record_offsets(const char *buf, size_t len, size_t *offs, size_t max)
{
	size_t off = MAGIC_LEN, n = 0;

	while (off + 4 <= len && n < max) {
		const uint8_t *p = (const uint8_t *)buf + off;

		offs[n++] = off;
		off += 4 + ((size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3]);
	}
	offs[n] = off;
	return n;
}

static void
test_roundtrip_and_reopen(void **state)
{
	struct fixture *f = *state;
	struct ledger_report rep;
	struct ledger *l = NULL;
	struct errbuf err = { { 0 } };
	struct stat st;

	make_ledger(f, 10, 4);
	assert_int_equal(stat(f->ldir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0750);
	snprintf(err.msg, sizeof(err.msg), "%s/ledger.key", f->ldir);
	assert_int_equal(stat(err.msg, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	verify_dir(f->ldir, NULL, &rep);
	assert_true(rep.ok);
	assert_int_equal(rep.entries, 10);
	/* 4, 8 by count and 10 at close. */
	assert_int_equal(rep.checkpoints, 3);
	assert_int_equal(rep.last_checkpoint_size, 10);
	assert_int_equal(rep.unsigned_tail, 0);

	/* Reopen and continue the same chain; a second writer is refused. */
	assert_int_equal(ledger_open(f->ldir, LEDGER_RW, &l, &err), 0);
	assert_int_equal(ledger_size(l), 10);
	{
		struct ledger *l2 = NULL;

		assert_int_equal(ledger_open(f->ldir, LEDGER_RW, &l2, &err), -EBUSY);
	}
	assert_int_equal(ledger_append(l, "agent", "agent.stop", "{}", 2, NULL), 0);
	assert_int_equal(ledger_append(l, "agent", "bad\naction", "{}", 2, NULL), -EINVAL);
	assert_int_equal(ledger_append(l, "", "x", "{}", 2, NULL), -EINVAL);
	ledger_close(l);
	verify_dir(f->ldir, f->pub, &rep);
	assert_true(rep.ok);
	assert_int_equal(rep.entries, 11);
	assert_int_equal(rep.checkpoints, 4);
}

/* Flipping any single byte of entries.log is caught, and the report names
 * the entry whose record holds that byte. */
static void
test_every_byte_flip_named(void **state)
{
	struct fixture *f = *state;
	struct ledger_report rep;
	size_t len, offs[16], n;
	char *orig;

	make_ledger(f, 6, 3);
	orig = slurp(f->entries, &len);
	n = record_offsets(orig, len, offs, 15);
	assert_int_equal(n, 6);
	assert_int_equal(offs[n], len);
	for (size_t i = 0; i < len; i++) {
		char *copy = malloc(len);
		uint64_t want = 0;

		assert_non_null(copy);
		memcpy(copy, orig, len);
		copy[i] ^= 0x01;
		spit(f->entries, copy, len);
		verify_dir(f->ldir, f->pub, &rep);
		while (want + 1 < n && offs[want + 1] <= i)
			want++;
		if (rep.ok || rep.first_bad_seq != want)
			fail_msg("byte %zu flipped: ok=%d first_bad=%llu want %llu (%s)", i, rep.ok,
			         (unsigned long long)rep.first_bad_seq, (unsigned long long)want,
			         rep.reason);
		free(copy);
	}
	spit(f->entries, orig, len);
	verify_dir(f->ldir, f->pub, &rep);
	assert_true(rep.ok);
	free(orig);
}

static void
test_delete_and_reorder(void **state)
{
	struct fixture *f = *state;
	struct ledger_report rep;
	size_t len, offs[16], n;
	char *orig, *buf;

	make_ledger(f, 8, 100);
	orig = slurp(f->entries, &len);
	n = record_offsets(orig, len, offs, 15);
	assert_int_equal(n, 8);
	buf = malloc(len);
	assert_non_null(buf);

	/* Delete entry 3. */
	memcpy(buf, orig, offs[3]);
	memcpy(buf + offs[3], orig + offs[4], len - offs[4]);
	spit(f->entries, buf, len - (offs[4] - offs[3]));
	verify_dir(f->ldir, f->pub, &rep);
	assert_false(rep.ok);
	assert_int_equal(rep.first_bad_seq, 3);
	assert_non_null(strstr(rep.reason, "deleted or reordered"));

	/* Swap entries 5 and 6. */
	memcpy(buf, orig, offs[5]);
	memcpy(buf + offs[5], orig + offs[6], offs[7] - offs[6]);
	memcpy(buf + offs[5] + (offs[7] - offs[6]), orig + offs[5], offs[6] - offs[5]);
	memcpy(buf + offs[7], orig + offs[7], len - offs[7]);
	spit(f->entries, buf, len);
	verify_dir(f->ldir, f->pub, &rep);
	assert_false(rep.ok);
	assert_int_equal(rep.first_bad_seq, 5);

	/* Delete the very first entry. */
	memcpy(buf, orig, MAGIC_LEN);
	memcpy(buf + MAGIC_LEN, orig + offs[1], len - offs[1]);
	spit(f->entries, buf, len - (offs[1] - offs[0]));
	verify_dir(f->ldir, f->pub, &rep);
	assert_false(rep.ok);
	assert_int_equal(rep.first_bad_seq, 0);
	free(buf);
	free(orig);
}

/* Cutting whole entries that a checkpoint covers is caught and named; cutting
 * inside a record is a torn tail. */
static void
test_truncation(void **state)
{
	struct fixture *f = *state;
	struct ledger_report rep;
	size_t len, offs[16], n;
	char *orig;

	make_ledger(f, 9, 100); /* one checkpoint, at close, of size 9 */
	orig = slurp(f->entries, &len);
	n = record_offsets(orig, len, offs, 15);
	assert_int_equal(n, 9);
	for (size_t cut = 1; cut < n; cut++) {
		assert_int_equal(truncate(f->entries, (off_t)offs[cut]), 0);
		verify_dir(f->ldir, f->pub, &rep);
		assert_false(rep.ok);
		assert_int_equal(rep.first_bad_seq, cut);
		assert_non_null(strstr(rep.reason, "truncated"));
		spit(f->entries, orig, len);
	}
	assert_int_equal(truncate(f->entries, (off_t)(offs[6] + 10)), 0);
	verify_dir(f->ldir, f->pub, &rep);
	assert_false(rep.ok);
	assert_int_equal(rep.first_bad_seq, 6);
	assert_non_null(strstr(rep.reason, "torn"));
	free(orig);
}

/* A crash mid-append leaves a torn record: verify reports it, the next RW open
 * keeps the bytes aside, cuts the file and records what it did. */
static void
test_torn_tail_recovery(void **state)
{
	struct fixture *f = *state;
	struct ledger_report rep;
	struct ledger *l = NULL;
	struct errbuf err = { { 0 } };
	json_t *arr = NULL;
	size_t len;
	char *orig, side[192];
	int fd;

	make_ledger(f, 5, 100);
	orig = slurp(f->entries, &len);
	fd = open(f->entries, O_WRONLY | O_APPEND | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, orig + MAGIC_LEN, 40), 0); /* a partial record */
	close(fd);
	verify_dir(f->ldir, f->pub, &rep);
	assert_false(rep.ok);
	assert_int_equal(rep.first_bad_seq, 5);

	assert_int_equal(ledger_open(f->ldir, LEDGER_RW, &l, &err), 0);
	assert_int_equal(ledger_size(l), 6); /* + ledger.torn_tail */
	ledger_close(l);
	snprintf(side, sizeof(side), "%s.torn-%zu", f->entries, len);
	assert_int_equal(access(side, F_OK), 0);
	verify_dir(f->ldir, f->pub, &rep);
	assert_true(rep.ok);
	assert_int_equal(rep.entries, 6);

	assert_int_equal(ledger_open(f->ldir, LEDGER_RO, &l, &err), 0);
	assert_int_equal(ledger_show(l, 1, &arr, &err), 0);
	assert_int_equal(json_array_size(arr), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 0), "action")),
	                    "ledger.torn_tail");
	json_decref(arr);
	ledger_close(l);
	free(orig);
}

/* A damaged ledger is not silently continued: RW open refuses it. */
static void
test_rw_open_refuses_damage(void **state)
{
	struct fixture *f = *state;
	struct ledger *l = NULL;
	struct errbuf err = { { 0 } };
	size_t len, offs[8];
	char *buf;

	make_ledger(f, 4, 100);
	buf = slurp(f->entries, &len);
	record_offsets(buf, len, offs, 7);
	buf[offs[2] + 30] ^= 0x20;
	spit(f->entries, buf, len);
	assert_int_equal(ledger_open(f->ldir, LEDGER_RW, &l, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "entry 2"));
	free(buf);
}

/* Checkpoint file tampering, a wrong trusted key, a missing private key. */
static void
test_checkpoint_signatures(void **state)
{
	struct fixture *f = *state;
	struct ledger_report rep;
	struct ledger *l = NULL;
	struct errbuf err = { { 0 } };
	char other[128], key[128];
	size_t len;
	char *buf;

	make_ledger(f, 12, 5); /* checkpoints at 5, 10, 12 */
	buf = slurp(f->ckpts, &len);
	assert_int_equal(len, MAGIC_LEN + 3 * 144);
	buf[MAGIC_LEN + 144 + 100] ^= 1; /* the signature of the second */
	spit(f->ckpts, buf, len);
	verify_dir(f->ldir, f->pub, &rep);
	assert_false(rep.ok);
	assert_int_equal(rep.first_bad_seq, 5);
	buf[MAGIC_LEN + 144 + 100] ^= 1;
	buf[MAGIC_LEN + 20] ^= 1; /* the root of the first */
	spit(f->ckpts, buf, len);
	verify_dir(f->ldir, f->pub, &rep);
	assert_false(rep.ok);
	assert_int_equal(rep.first_bad_seq, 0);
	buf[MAGIC_LEN + 20] ^= 1;
	spit(f->ckpts, buf, len);
	verify_dir(f->ldir, f->pub, &rep);
	assert_true(rep.ok);

	/* Another ledger's key is not trusted. */
	snprintf(other, sizeof(other), "%s/other", f->dir);
	assert_int_equal(ledger_open(other, LEDGER_RW, &l, &err), 0);
	ledger_close(l);
	snprintf(other, sizeof(other), "%s/other/ledger.pub", f->dir);
	verify_dir(f->ldir, other, &rep);
	assert_false(rep.ok);
	assert_int_equal(rep.first_bad_seq, 0);

	/* Without the private key the writer refuses to start a new signer. */
	snprintf(key, sizeof(key), "%s/ledger.key", f->ldir);
	assert_int_equal(unlink(key), 0);
	assert_int_equal(ledger_open(f->ldir, LEDGER_RW, &l, &err), -ENOKEY);
	free(buf);
}

/* An attacker who rewrites an entry and recomputes every later hash keeps
 * the chain valid, but not the signed root. */
static void
test_rewritten_chain_caught_by_checkpoint(void **state)
{
	struct fixture *f = *state;
	struct ledger_report rep;
	struct ledger *l = NULL;
	struct errbuf err = { { 0 } };
	char key[128], keyc[128], pubc[128], ck[128], ckc[128], dir2[96];
	char *buf;
	size_t len;

	/* Build the same-length history twice with different payloads, then
	 * splice the second's entries under the first's checkpoints. */
	make_ledger(f, 6, 3);
	snprintf(dir2, sizeof(dir2), "%s/forged", f->dir);
	snprintf(key, sizeof(key), "%s/ledger.key", f->ldir);
	snprintf(keyc, sizeof(keyc), "%s/ledger.key", dir2);
	snprintf(pubc, sizeof(pubc), "%s/ledger.pub", dir2);
	assert_int_equal(mkdir(dir2, 0750), 0);
	buf = slurp(key, &len);
	{
		int fd = open(keyc, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

		assert_true(fd >= 0);
		assert_int_equal(write_all(fd, buf, len), 0);
		close(fd);
	}
	free(buf);
	/* The forger cannot sign (in the real world); here it has the key but
	 * we keep the original checkpoints, which is what an attacker without
	 * the key must do. */
	assert_int_equal(ledger_open(dir2, LEDGER_RW, &l, &err), 0);
	for (int i = 0; i < 6; i++)
		assert_int_equal(ledger_append(l, "agent", "forged", "x", 1, NULL), 0);
	ledger_close(l);
	snprintf(ck, sizeof(ck), "%s/checkpoints.log", f->ldir);
	snprintf(ckc, sizeof(ckc), "%s/checkpoints.log", dir2);
	buf = slurp(ck, &len);
	spit(ckc, buf, len);
	free(buf);
	(void)pubc;
	verify_dir(dir2, NULL, &rep);
	assert_false(rep.ok);
	/* Entry 0 (key.created) is identical in both except its time; the first
	 * checkpoint (size 3) already disagrees. */
	assert_int_equal(rep.first_bad_seq, 0);
	assert_non_null(strstr(rep.reason, "rewritten"));
}

static char *
prove_text(const char *dir, uint64_t seq, int *rc)
{
	struct ledger *l = NULL;
	struct errbuf err = { { 0 } };
	json_t *proof = NULL;
	char *text = NULL;

	assert_int_equal(ledger_open(dir, LEDGER_RO, &l, &err), 0);
	*rc = ledger_prove(l, seq, &proof, &err);
	if (*rc == 0) {
		text = json_dumps(proof, JSON_COMPACT);
		json_decref(proof);
	}
	ledger_close(l);
	return text;
}

static void
test_prove_and_verify_proof(void **state)
{
	struct fixture *f = *state;
	struct errbuf err = { { 0 } };
	struct ledger *l = NULL;
	bool signed_ok = false;
	int rc;

	make_ledger(f, 37, 10);
	for (uint64_t seq = 0; seq < 37; seq++) {
		char *text = prove_text(f->ldir, seq, &rc), *p;

		assert_int_equal(rc, 0);
		assert_int_equal(ledger_verify_proof(text, strlen(text), f->pub, &signed_ok, &err),
		                 0);
		assert_true(signed_ok);
		assert_int_equal(ledger_verify_proof(text, strlen(text), NULL, &signed_ok, &err),
		                 0);
		assert_false(signed_ok);
		/* Change one hex digit of the root, of the path, of the entry. */
		p = strstr(text, "\"root_hash\":\"") + 13;
		*p = *p == '0' ? '1' : '0';
		assert_int_equal(ledger_verify_proof(text, strlen(text), f->pub, NULL, &err),
		                 -EBADMSG);
		*p = *p == '0' ? '1' : '0';
		if ((p = strstr(text, "\"audit_path\":[\"")) != NULL) {
			p += 15;
			*p = *p == '0' ? '1' : '0';
			assert_int_equal(
			    ledger_verify_proof(text, strlen(text), f->pub, NULL, &err), -EBADMSG);
			*p = *p == '0' ? '1' : '0';
		}
		p = strstr(text, "\"entry_bytes\":\"") + 40;
		*p = *p == '0' ? '1' : '0';
		assert_int_equal(ledger_verify_proof(text, strlen(text), f->pub, NULL, &err),
		                 -EBADMSG);
		free(text);
	}
	assert_null(prove_text(f->ldir, 37, &rc));
	assert_int_equal(rc, -ENOENT);

	/* Entries after the last checkpoint cannot be proven yet. */
	assert_int_equal(ledger_open(f->ldir, LEDGER_RW, &l, &err), 0);
	{
		struct ledger_policy p = { .checkpoint_every = 0, .sync_each_append = true };

		assert_int_equal(ledger_set_policy(l, &p), 0);
	}
	assert_int_equal(ledger_append(l, "agent", "late", "", 0, NULL), 0);
	assert_null(prove_text(f->ldir, 37, &rc));
	assert_int_equal(rc, -EAGAIN);
	assert_int_equal(ledger_checkpoint(l), 1);
	assert_int_equal(ledger_checkpoint(l), 0);
	ledger_close(l);
	free(prove_text(f->ldir, 37, &rc));
	assert_int_equal(rc, 0);
	assert_int_equal(ledger_verify_proof("{", 1, NULL, NULL, &err), -EBADMSG);
}

static void
test_show_and_export(void **state)
{
	struct fixture *f = *state;
	struct errbuf err = { { 0 } };
	struct ledger *l = NULL;
	json_t *arr = NULL;
	char *out = NULL;
	size_t outlen = 0;
	FILE *mem;
	int lines = 0;

	make_ledger(f, 7, 3); /* checkpoints at 3, 6, 7 */
	assert_int_equal(ledger_open(f->ldir, LEDGER_RO, &l, &err), 0);
	assert_int_equal(ledger_show(l, 0, &arr, &err), 0);
	assert_int_equal(json_array_size(arr), 7);
	assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 0), "action")),
	                    "key.created");
	json_decref(arr);
	assert_int_equal(ledger_show(l, 2, &arr, &err), 0);
	assert_int_equal(json_array_size(arr), 2);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(arr, 0), "seq")), 5);
	assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 1), "payload")),
	                    "{\"i\":6,\"pad\":\"      \"}");
	json_decref(arr);
	mem = open_memstream(&out, &outlen);
	assert_non_null(mem);
	assert_int_equal(ledger_export(l, mem, &err), 10);
	fclose(mem);
	for (char *p = out; (p = strchr(p, '\n')) != NULL; p++)
		lines++;
	assert_int_equal(lines, 10);
	assert_non_null(strstr(out, "\"type\":\"checkpoint\""));
	free(out);
	ledger_close(l);
}

/* Time-based checkpoints: a quiet ledger gets signed by ledger_tick. */
static void
test_tick_checkpoint(void **state)
{
	struct fixture *f = *state;
	struct ledger_policy p = { .checkpoint_every = 0, .checkpoint_interval_s = 3600 };
	struct ledger_report rep;
	struct ledger *l = NULL;
	struct errbuf err = { { 0 } };

	assert_int_equal(ledger_open(f->ldir, LEDGER_RW, &l, &err), 0);
	assert_int_equal(ledger_set_policy(l, &p), 0);
	assert_int_equal(ledger_append(l, "agent", "agent.start", "{}", 2, NULL), 0);
	assert_int_equal(ledger_tick(l), 0); /* not due for an hour */
	p.checkpoint_interval_s = 1;
	assert_int_equal(ledger_set_policy(l, &p), 0);
	usleep(1100 * 1000);
	assert_int_equal(ledger_tick(l), 1);
	assert_int_equal(ledger_tick(l), 0); /* nothing new to sign */
	verify_dir(f->ldir, f->pub, &rep);
	assert_true(rep.ok);
	assert_int_equal(rep.checkpoints, 1);
	assert_int_equal(rep.last_checkpoint_size, 2);
	ledger_close(l);
}

/* Zeros past the end (size reached the disk before the data) are a torn
 * tail too; and a damaged ledger can be moved aside keeping its signer. */
static void
test_zero_tail_and_quarantine(void **state)
{
	struct fixture *f = *state;
	static const char zeros[300];
	struct ledger_report rep;
	struct ledger *l = NULL;
	struct errbuf err = { { 0 } };
	char moved[256], pub_old[320];
	size_t len;
	char *buf;
	int fd;

	make_ledger(f, 5, 100);
	fd = open(f->entries, O_WRONLY | O_APPEND | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, zeros, sizeof(zeros)), 0);
	close(fd);
	verify_dir(f->ldir, f->pub, &rep);
	assert_false(rep.ok);
	assert_int_equal(rep.first_bad_seq, 5);
	assert_non_null(strstr(rep.reason, "torn"));
	assert_int_equal(ledger_open(f->ldir, LEDGER_RW, &l, &err), 0);
	ledger_close(l);
	verify_dir(f->ldir, f->pub, &rep);
	assert_true(rep.ok);

	/* Damage entry 2: RW open refuses; quarantine; a fresh ledger with
	 * the same key starts, and the old one still shows its damage. */
	buf = slurp(f->entries, &len);
	buf[MAGIC_LEN + 700] ^= 0x10;
	spit(f->entries, buf, len);
	free(buf);
	assert_int_equal(ledger_open(f->ldir, LEDGER_RW, &l, &err), -EBADMSG);
	assert_int_equal(ledger_quarantine(f->ldir, moved, sizeof(moved), &err), 0);
	assert_int_equal(ledger_open(f->ldir, LEDGER_RW, &l, &err), 0);
	assert_int_equal(ledger_size(l), 0); /* same key: no key.created */
	assert_int_equal(
	    ledger_append(l, "ledger", "ledger.quarantined", moved, strlen(moved), NULL), 0);
	ledger_close(l);
	snprintf(pub_old, sizeof(pub_old), "%s/ledger.pub", moved);
	verify_dir(f->ldir, pub_old, &rep);
	assert_true(rep.ok);
	verify_dir(moved, pub_old, &rep);
	assert_false(rep.ok);
	nftw(moved, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Cutting both files back consistently passes a plain verify (the files
 * alone cannot tell), but not a verify against a checkpoint kept elsewhere. */
static void
test_trusted_checkpoint(void **state)
{
	struct fixture *f = *state;
	struct ledger_report rep;
	struct ledger *l = NULL;
	struct errbuf err = { { 0 } };
	size_t len, offs[32], clen;
	char *buf, *ck, *kept = NULL, *line;
	size_t keptlen = 0;
	FILE *mem;

	make_ledger(f, 20, 5); /* checkpoints at 5, 10, 15, 20 */
	assert_int_equal(ledger_open(f->ldir, LEDGER_RO, &l, &err), 0);
	mem = open_memstream(&kept, &keptlen);
	assert_int_equal(ledger_export(l, mem, &err), 24);
	fclose(mem);
	line = strrchr(kept, '{'); /* the last checkpoint line */
	assert_non_null(line);
	assert_int_equal(ledger_verify_with(l, f->pub, line, strlen(line), &rep, &err), 0);
	assert_true(rep.ok);
	ledger_close(l);

	buf = slurp(f->entries, &len);
	record_offsets(buf, len, offs, 31);
	assert_int_equal(truncate(f->entries, (off_t)offs[12]), 0);
	ck = slurp(f->ckpts, &clen);
	assert_int_equal(truncate(f->ckpts, MAGIC_LEN + 2 * 144), 0); /* keep 5 and 10 */
	verify_dir(f->ldir, f->pub, &rep);
	assert_true(rep.ok);
	assert_int_equal(ledger_open(f->ldir, LEDGER_RO, &l, &err), 0);
	assert_int_equal(ledger_verify_with(l, f->pub, line, strlen(line), &rep, &err), 0);
	assert_false(rep.ok);
	assert_int_equal(rep.first_bad_seq, 12);
	assert_non_null(strstr(rep.reason, "trusted checkpoint"));
	/* A forged trusted checkpoint is refused, not believed. */
	{
		char *sig = strstr(line, "\"signature\":\"") + 20;

		*sig = *sig == '0' ? '1' : '0';
	}
	assert_int_equal(ledger_verify_with(l, f->pub, line, strlen(line), &rep, &err), 0);
	assert_false(rep.ok);
	assert_int_equal(rep.first_bad_seq, 0);
	assert_non_null(strstr(rep.reason, "trusted checkpoint (tree size 20): bad signature"));
	assert_int_equal(ledger_verify_with(l, f->pub, "{}", 2, &rep, &err), -EINVAL);
	ledger_close(l);
	free(buf);
	free(ck);
	free(kept);
}

static void *
append_many(void *arg)
{
	struct ledger *l = arg;

	for (int i = 0; i < 200; i++)
		if (ledger_append(l, "alerts", "alert.raised", "{}", 2, NULL) < 0)
			return arg;
	return NULL;
}

/* Appends from several threads (alert observers, the engine loop) make one
 * clean chain. */
static void
test_threads_append(void **state)
{
	struct fixture *f = *state;
	struct ledger_policy p = { .checkpoint_every = 50, .sync_each_append = false };
	struct ledger_report rep;
	struct ledger *l = NULL;
	struct errbuf err = { { 0 } };
	pthread_t t[4];
	void *res;

	assert_int_equal(ledger_open(f->ldir, LEDGER_RW, &l, &err), 0);
	assert_int_equal(ledger_set_policy(l, &p), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, append_many, l), 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], &res), 0);
		assert_null(res);
	}
	ledger_close(l);
	verify_dir(f->ldir, f->pub, &rep);
	assert_true(rep.ok);
	assert_int_equal(rep.entries, 801);
	assert_int_equal(rep.checkpoints, 17);
}

struct late_write {
	const char *path;
	const char *bytes;
	size_t n;
};

static void *
finish_write(void *arg)
{
	struct late_write *w = arg;
	int fd;

	usleep(20 * 1000);
	fd = open(w->path, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0 || write_all(fd, w->bytes, w->n) < 0)
		return arg;
	close(fd);
	return NULL;
}

/* A verify that catches the agent in the middle of a write sees a torn
 * tail; while the writer is live it looks again instead of crying wolf. A
 * tail that stays torn is still reported. */
static void
test_verify_during_write(void **state)
{
	struct fixture *f = *state;
	struct ledger_policy p = { .checkpoint_every = 0, .sync_each_append = false };
	struct late_write w;
	struct ledger_report rep;
	struct ledger *l = NULL;
	struct errbuf err = { { 0 } };
	size_t len, offs[16], n;
	pthread_t t;
	void *res;
	char *buf;

	assert_int_equal(ledger_open(f->ldir, LEDGER_RW, &l, &err), 0);
	assert_int_equal(ledger_set_policy(l, &p), 0);
	for (int i = 0; i < 6; i++)
		assert_int_equal(ledger_append(l, "agent", "agent.state", "{}", 2, NULL), 0);
	buf = slurp(f->entries, &len);
	n = record_offsets(buf, len, offs, 15);
	assert_int_equal(n, 7);
	/* Leave the last record half-written, as a reader could observe it. */
	assert_int_equal(truncate(f->entries, (off_t)(offs[6] + 30)), 0);
	w = (struct late_write){ f->entries, buf + offs[6] + 30, len - offs[6] - 30 };
	assert_int_equal(pthread_create(&t, NULL, finish_write, &w), 0);
	verify_dir(f->ldir, f->pub, &rep);
	assert_int_equal(pthread_join(t, &res), 0);
	assert_null(res);
	assert_true(rep.ok);
	assert_int_equal(rep.entries, 7);

	/* Torn for good: reported even with the writer live. */
	assert_int_equal(truncate(f->entries, (off_t)(offs[6] + 30)), 0);
	verify_dir(f->ldir, f->pub, &rep);
	assert_false(rep.ok);
	assert_int_equal(rep.first_bad_seq, 6);
	spit(f->entries, buf, len);
	ledger_close(l);
	free(buf);
}

/* Consistency proofs from every older size to the newest signed head verify,
 * carry the older signed head when there was one, and fail when changed. */
static void
test_consistency_proofs(void **state)
{
	struct fixture *f = *state;
	struct errbuf err = { { 0 } };
	struct ledger *l = NULL;
	json_t *proof = NULL;
	bool signed_ok;

	make_ledger(f, 40, 7); /* checkpoints at 7, 14, ..., 35 and 40 */
	assert_int_equal(ledger_open(f->ldir, LEDGER_RO, &l, &err), 0);
	for (uint64_t m = 1; m <= 40; m++) {
		char *text, *p;

		assert_int_equal(ledger_prove_consistency(l, m, &proof, &err), 0);
		assert_int_equal(json_integer_value(json_object_get(proof, "second_size")), 40);
		assert_int_equal(json_object_get(proof, "first_checkpoint") != NULL,
		                 m % 7 == 0 || m == 40);
		text = json_dumps(proof, JSON_COMPACT);
		json_decref(proof);
		assert_int_equal(ledger_verify_proof(text, strlen(text), f->pub, &signed_ok, &err),
		                 0);
		assert_true(signed_ok);
		p = strstr(text, "\"first_root\":\"") + 14;
		*p = *p == '0' ? '1' : '0';
		assert_int_equal(ledger_verify_proof(text, strlen(text), f->pub, NULL, &err),
		                 -EBADMSG);
		*p = *p == '0' ? '1' : '0';
		if ((p = strstr(text, "\"consistency_path\":[\"")) != NULL) {
			p += 21;
			*p = *p == '0' ? '1' : '0';
			assert_int_equal(
			    ledger_verify_proof(text, strlen(text), f->pub, NULL, &err), -EBADMSG);
		}
		free(text);
	}
	assert_int_equal(ledger_prove_consistency(l, 0, &proof, &err), -ENOENT);
	assert_int_equal(ledger_prove_consistency(l, 41, &proof, &err), -ENOENT);
	ledger_close(l);
}

/* Arguments and modes the API refuses, each with its own error code, and
 * nothing written to disk by a refused call. */
static void
test_refused_arguments(void **state)
{
	struct fixture *f = *state;
	struct ledger_policy p = { .checkpoint_every = 0, .checkpoint_interval_s = 86400 * 366 };
	struct errbuf err = { { 0 } };
	struct ledger *l = NULL, *ro = NULL;
	char actor[LEDGER_ACTOR_MAX + 2];
	char *big;
	size_t before, after;
	char *text;

	assert_int_equal(ledger_open(NULL, LEDGER_RW, &l, &err), -EINVAL);
	assert_int_equal(ledger_open("", LEDGER_RO, &l, &err), -EINVAL);
	assert_int_equal(ledger_open(f->ldir, (enum ledger_mode)7, &l, &err), -EINVAL);
	assert_null(l);
	assert_int_equal(ledger_append(NULL, "a", "b", NULL, 0, NULL), -EINVAL);
	assert_int_equal(ledger_checkpoint(NULL), -EINVAL);
	assert_int_equal(ledger_tick(NULL), -EINVAL);
	assert_int_equal(ledger_size(NULL), 0);
	assert_int_equal(ledger_set_policy(NULL, &p), -EINVAL);
	ledger_close(NULL);

	make_ledger(f, 3, 0);
	assert_int_equal(ledger_open(f->ldir, LEDGER_RW, &l, &err), 0);
	assert_int_equal(ledger_size(l), 3);
	/* Nothing new since the checkpoint written at close: nothing to sign. */
	assert_int_equal(ledger_checkpoint(l), 0);
	assert_int_equal(ledger_set_policy(l, NULL), -EINVAL);
	assert_int_equal(ledger_set_policy(l, &p), -EINVAL); /* more than a year */
	text = slurp(f->entries, &before);
	free(text);
	memset(actor, 'a', sizeof(actor) - 1);
	actor[sizeof(actor) - 1] = '\0';
	assert_int_equal(ledger_append(l, actor, "x", "{}", 2, NULL), -EINVAL);
	actor[LEDGER_ACTOR_MAX] = '\0'; /* exactly the maximum is fine */
	assert_int_equal(ledger_append(l, NULL, "x", "{}", 2, NULL), -EINVAL);
	assert_int_equal(ledger_append(l, "agent", "x\x7f", "{}", 2, NULL), -EINVAL);
	assert_int_equal(ledger_append(l, "\xc3\x28", "x", "{}", 2, NULL), -EINVAL);
	assert_int_equal(ledger_append(l, "agent", "x", NULL, 2, NULL), -EINVAL);
	big = calloc(1, LEDGER_PAYLOAD_MAX + 1);
	assert_non_null(big);
	assert_int_equal(ledger_append(l, "agent", "x", big, LEDGER_PAYLOAD_MAX + 1, NULL),
	                 -EINVAL);
	free(big);
	text = slurp(f->entries, &after);
	free(text);
	assert_int_equal(after, before);
	assert_int_equal(ledger_size(l), 3);
	assert_int_equal(ledger_append(l, actor, "x", NULL, 0, NULL), 0);
	assert_int_equal(ledger_size(l), 4);

	/* A reader never writes. */
	assert_int_equal(ledger_open(f->ldir, LEDGER_RO, &ro, &err), 0);
	assert_int_equal(ledger_append(ro, "agent", "x", "{}", 2, NULL), -EROFS);
	assert_int_equal(ledger_checkpoint(ro), -EROFS);
	assert_int_equal(ledger_tick(ro), -EINVAL);
	assert_int_equal(ledger_size(ro), 0);
	ledger_close(ro);
	ledger_close(l);
}

/* Opening where there is no ledger, or no directory to make one in. */
static void
test_open_missing_dirs(void **state)
{
	struct fixture *f = *state;
	struct errbuf err = { { 0 } };
	struct ledger *l = NULL;
	char path[160];

	assert_int_equal(ledger_open(f->ldir, LEDGER_RO, &l, &err), -ENOENT);
	assert_null(l);
	assert_non_null(strstr(err.msg, f->ldir));
	snprintf(path, sizeof(path), "%s/no/such/ledger", f->dir);
	assert_int_equal(ledger_open(path, LEDGER_RW, &l, &err), -ENOENT);
	assert_null(l);
	assert_non_null(strstr(err.msg, path));
}

/* The writer refuses a signing key others could read, or one that is not
 * an Ed25519 private key, and says which file. */
static void
test_bad_signing_key(void **state)
{
	struct fixture *f = *state;
	struct errbuf err = { { 0 } };
	struct ledger *l = NULL;
	char key[160];
	int fd;

	make_ledger(f, 2, 0);
	snprintf(key, sizeof(key), "%s/ledger.key", f->ldir);
	assert_int_equal(chmod(key, 0640), 0);
	assert_int_equal(ledger_open(f->ldir, LEDGER_RW, &l, &err), -EPERM);
	assert_null(l);
	assert_non_null(strstr(err.msg, "mode 0600"));
	assert_non_null(strstr(err.msg, "ledger.key"));

	assert_int_equal(unlink(key), 0);
	fd = open(key, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, "not a key\n", 10), 0);
	close(fd);
	assert_int_equal(ledger_open(f->ldir, LEDGER_RW, &l, &err), -EINVAL);
	assert_null(l);
	assert_non_null(strstr(err.msg, "not an Ed25519 private key"));
}

/* Quarantine: arguments, a result that does not fit, nothing to move. */
static void
test_quarantine_refused(void **state)
{
	struct fixture *f = *state;
	struct errbuf err = { { 0 } };
	char moved[256], tiny[8];
	struct stat st;

	assert_int_equal(ledger_quarantine(NULL, moved, sizeof(moved), &err), -EINVAL);
	assert_int_equal(ledger_quarantine("", moved, sizeof(moved), &err), -EINVAL);
	assert_int_equal(ledger_quarantine(f->ldir, NULL, 0, &err), -EINVAL);
	assert_int_equal(ledger_quarantine(f->ldir, moved, sizeof(moved), &err), -ENOENT);
	assert_non_null(strstr(err.msg, "cannot move aside"));
	make_ledger(f, 2, 0);
	assert_int_equal(ledger_quarantine(f->ldir, tiny, sizeof(tiny), &err), -ENAMETOOLONG);
	/* Refused before anything moved. */
	assert_int_equal(stat(f->entries, &st), 0);
}

/* Verifies a proof object; returns ledger_verify_proof()'s result. */
static int
verify_obj(const json_t *proof, const char *pub, bool *signed_ok, struct errbuf *err)
{
	char *text = json_dumps(proof, JSON_COMPACT);
	int rc;

	assert_non_null(text);
	rc = ledger_verify_proof(text, strlen(text), pub, signed_ok, err);
	free(text);
	return rc;
}

/* A copy of proof with one member of obj (proof itself, or its member
 * `inner`) replaced by v (NULL: removed); verifying it must fail with -EBADMSG
 * and a reason containing want. */
static void
expect_bad(const json_t *proof, const char *inner, const char *key, json_t *v, const char *pub,
           const char *want)
{
	json_t *copy = json_deep_copy(proof), *obj;
	struct errbuf err = { { 0 } };
	bool signed_ok = true;

	assert_non_null(copy);
	obj = inner != NULL ? json_object_get(copy, inner) : copy;
	assert_non_null(obj);
	if (v != NULL)
		assert_int_equal(json_object_set_new(obj, key, v), 0);
	else
		assert_int_equal(json_object_del(obj, key), 0);
	assert_int_equal(verify_obj(copy, pub, &signed_ok, &err), -EBADMSG);
	if (strstr(err.msg, want) == NULL)
		fail_msg("%s.%s: \"%s\" does not say \"%s\"", inner ? inner : "", key, err.msg,
		         want);
	json_decref(copy);
}

static char *
upper(const char *s)
{
	char *u = strdup(s);

	assert_non_null(u);
	for (char *p = u; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	return u;
}

/* Every part of an inclusion or consistency proof is checked: missing or
 * malformed fields, entry bytes of another entry, a checkpoint of another
 * tree, a signature by another key; upper-case hex is still hex. */
static void
test_proof_tampering(void **state)
{
	struct fixture *f = *state;
	struct errbuf err = { { 0 } };
	struct ledger *l = NULL;
	json_t *proof = NULL, *other = NULL, *cons = NULL, *copy;
	char odir[128], opub[160];
	bool signed_ok = false;
	const char *bytes;
	char *up;

	make_ledger(f, 10, 4);
	snprintf(odir, sizeof(odir), "%s/other", f->dir);
	snprintf(opub, sizeof(opub), "%s/ledger.pub", odir);
	assert_int_equal(ledger_open(odir, LEDGER_RW, &l, &err), 0);
	ledger_close(l); /* a second signer, for the wrong-key case */

	assert_int_equal(ledger_open(f->ldir, LEDGER_RO, &l, &err), 0);
	assert_int_equal(ledger_prove(NULL, 3, &proof, &err), -EINVAL);
	assert_int_equal(ledger_prove(l, 3, NULL, &err), -EINVAL);
	assert_int_equal(ledger_prove_consistency(NULL, 3, &cons, &err), -EINVAL);
	assert_int_equal(ledger_prove(l, 3, &proof, &err), 0);
	assert_int_equal(ledger_prove(l, 4, &other, &err), 0);
	assert_int_equal(ledger_prove_consistency(l, 4, &cons, &err), 0);
	ledger_close(l);

	assert_int_equal(verify_obj(proof, f->pub, &signed_ok, &err), 0);
	assert_true(signed_ok);
	assert_int_equal(verify_obj(proof, NULL, &signed_ok, &err), 0);
	assert_false(signed_ok); /* no key given: the tree checks, the signature is unknown */

	assert_int_equal(ledger_verify_proof(NULL, 0, f->pub, NULL, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "no proof"));
	assert_int_equal(ledger_verify_proof("[1]", 3, f->pub, NULL, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "not a JSON object"));
	assert_int_equal(ledger_verify_proof("{\"a\":", 5, f->pub, NULL, &err), -EBADMSG);

	expect_bad(proof, NULL, "leaf_index", NULL, f->pub, "missing or malformed");
	expect_bad(proof, NULL, "tree_size", json_integer(-1), f->pub, "missing or malformed");
	expect_bad(proof, NULL, "root_hash", json_string("abc"), f->pub, "missing or malformed");
	expect_bad(proof, NULL, "leaf_hash",
	           json_string("zz00000000000000000000000000000000000000000000000000000000000000"),
	           f->pub, "missing or malformed");
	expect_bad(
	    proof, NULL, "root_hash",
	    json_string("000000000000000000000000000000000000000000000000000000000000000000"),
	    f->pub, "missing or malformed");
	expect_bad(proof, NULL, "audit_path", json_string("x"), f->pub, "missing or malformed");
	expect_bad(proof, NULL, "audit_path", json_pack("[i]", 1), f->pub, "missing or malformed");
	expect_bad(proof, "entry", "entry_bytes", json_string("0g"), f->pub, "not hex");
	expect_bad(proof, "entry", "entry_bytes", json_string("0000"), f->pub,
	           "is not a ledger entry");
	bytes = json_string_value(json_object_get(json_object_get(other, "entry"), "entry_bytes"));
	assert_non_null(bytes);
	expect_bad(proof, "entry", "entry_bytes", json_string(bytes), f->pub,
	           "leaf_hash is not the hash of the entry");
	expect_bad(proof, NULL, "checkpoint", NULL, f->pub, "checkpoint missing or malformed");
	expect_bad(proof, "checkpoint", "signature", json_string("00"), f->pub,
	           "checkpoint missing or malformed");
	expect_bad(proof, "checkpoint", "tree_size",
	           json_integer(json_integer_value(json_object_get(proof, "tree_size")) + 1),
	           f->pub, "differs from the checkpoint");
	expect_bad(proof, NULL, "tree_size", json_integer(1000), f->pub, "");
	/* Signed, but by another key. */
	assert_int_equal(verify_obj(proof, opub, &signed_ok, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "signature does not verify with that key"));
	/* A key file that is not there is the OS's error, not a verdict. */
	snprintf(opub, sizeof(opub), "%s/none.pub", odir);
	assert_int_equal(verify_obj(proof, opub, &signed_ok, &err), -ENOENT);
	/* Upper-case hex decodes to the same bytes. */
	copy = json_deep_copy(proof);
	up = upper(
	    json_string_value(json_object_get(json_object_get(copy, "entry"), "entry_bytes")));
	json_object_set_new(json_object_get(copy, "entry"), "entry_bytes", json_string(up));
	free(up);
	up = upper(json_string_value(json_object_get(copy, "root_hash")));
	json_object_set_new(copy, "root_hash", json_string(up));
	free(up);
	assert_int_equal(verify_obj(copy, f->pub, &signed_ok, &err), 0);
	assert_true(signed_ok);
	json_decref(copy);

	/* Consistency proofs. */
	assert_int_equal(verify_obj(cons, f->pub, &signed_ok, &err), 0);
	assert_true(signed_ok);
	expect_bad(cons, NULL, "first_root", NULL, f->pub, "missing or malformed");
	expect_bad(cons, NULL, "second_size", json_string("10"), f->pub, "missing or malformed");
	expect_bad(cons, NULL, "first_size", json_integer(3), f->pub, "does not extend");
	expect_bad(cons, "checkpoint", "tree_size", json_integer(9), f->pub,
	           "differs from the checkpoint");
	/* The older signed head (size 4) is checked too: give it the newer root. */
	assert_non_null(json_object_get(cons, "first_checkpoint"));
	expect_bad(
	    cons, "first_checkpoint", "root_hash",
	    json_deep_copy(json_object_get(json_object_get(cons, "checkpoint"), "root_hash")),
	    f->pub, "differs from the first_checkpoint");
	json_decref(proof);
	json_decref(other);
	json_decref(cons);
}

/* While the writer has not signed anything yet, nothing can be proven. */
static void
test_prove_before_checkpoint(void **state)
{
	struct fixture *f = *state;
	struct ledger_policy p = { .checkpoint_every = 0, .checkpoint_interval_s = 0 };
	struct errbuf err = { { 0 } };
	struct ledger *w = NULL, *r = NULL;
	json_t *proof = NULL;

	assert_int_equal(ledger_open(f->ldir, LEDGER_RW, &w, &err), 0);
	assert_int_equal(ledger_set_policy(w, &p), 0);
	assert_int_equal(ledger_append(w, "agent", "agent.start", "{}", 2, NULL), 0);
	assert_int_equal(ledger_tick(w), 0); /* no policy: nothing due */
	assert_int_equal(ledger_open(f->ldir, LEDGER_RO, &r, &err), 0);
	assert_int_equal(ledger_prove(r, 1, &proof, &err), -EAGAIN);
	assert_non_null(strstr(err.msg, "not covered by a signed checkpoint"));
	assert_int_equal(ledger_prove(r, 7, &proof, &err), -ENOENT);
	assert_int_equal(ledger_prove_consistency(r, 1, &proof, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "newest checkpoint's (0)"));
	assert_null(proof);
	/* The writer signs; now it can. */
	assert_int_equal(ledger_checkpoint(w), 1);
	assert_int_equal(ledger_prove(r, 1, &proof, &err), 0);
	json_decref(proof);
	ledger_close(r);
	ledger_close(w);
}

/* Verifies dir read-only; returns ledger_verify()'s result. */
static int
verify_rc(const struct fixture *f, const char *pub, struct ledger_report *rep, struct errbuf *err)
{
	struct ledger *l = NULL;
	int rc;

	assert_int_equal(ledger_open(f->ldir, LEDGER_RO, &l, err), 0);
	rc = ledger_verify(l, pub, rep, err);
	ledger_close(l);
	return rc;
}

/* Files that are not what they should be: a public key that is not PEM, a
 * checkpoint file with the wrong magic or a checkpoint that does not grow,
 * an entries file with the wrong magic or that is a directory. */
static void
test_odd_files(void **state)
{
	struct fixture *f = *state;
	struct ledger_report rep;
	struct errbuf err = { { 0 } };
	char *ents, *cks, *twice, bad[160];
	size_t elen, clen;

	make_ledger(f, 6, 3); /* checkpoints at 3 and 6 */
	ents = slurp(f->entries, &elen);
	cks = slurp(f->ckpts, &clen);
	assert_int_equal(verify_rc(f, f->pub, &rep, &err), 0);
	assert_true(rep.ok);
	assert_int_equal(rep.checkpoints, 2);

	snprintf(bad, sizeof(bad), "%s/bad.pub", f->dir);
	{
		FILE *k = fopen(bad, "we");

		assert_non_null(k);
		assert_int_equal(fputs("not a key\n", k) >= 0, 1);
		assert_int_equal(fclose(k), 0);
	}
	assert_int_equal(verify_rc(f, bad, &rep, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "not a PEM public key"));

	cks[0] ^= 0x20;
	spit(f->ckpts, cks, clen);
	assert_int_equal(verify_rc(f, f->pub, &rep, &err), 0);
	assert_false(rep.ok);
	assert_non_null(strstr(rep.reason, "not a checkpoint file (bad magic)"));
	cks[0] ^= 0x20;

	/* The last checkpoint written twice: the second does not grow the tree. */
	twice = malloc(clen + 144);
	assert_non_null(twice);
	memcpy(twice, cks, clen);
	memcpy(twice + clen, cks + clen - 144, 144);
	spit(f->ckpts, twice, clen + 144);
	free(twice);
	assert_int_equal(verify_rc(f, f->pub, &rep, &err), 0);
	assert_false(rep.ok);
	assert_non_null(strstr(rep.reason, "does not grow"));
	spit(f->ckpts, cks, clen);
	assert_int_equal(verify_rc(f, f->pub, &rep, &err), 0);
	assert_true(rep.ok);

	ents[1] ^= 0x20;
	spit(f->entries, ents, elen);
	assert_int_equal(verify_rc(f, f->pub, &rep, &err), 0);
	assert_false(rep.ok);
	assert_non_null(strstr(rep.reason, "entries.log: not a ledger (bad magic)"));
	assert_int_equal(unlink(f->entries), 0);
	assert_int_equal(mkdir(f->entries, 0700), 0);
	assert_int_equal(verify_rc(f, f->pub, &rep, &err), -EINVAL);
	assert_int_equal(rmdir(f->entries), 0);
	ents[1] ^= 0x20;
	{
		int fd = open(f->entries, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);

		assert_true(fd >= 0);
		close(fd);
	}
	spit(f->entries, ents, elen);
	assert_int_equal(verify_rc(f, f->pub, &rep, &err), 0);
	assert_true(rep.ok);
	free(ents);
	free(cks);
}

/* Readers (show, export, proofs) refuse a damaged entries file with the
 * reason, instead of showing part of it as if it were whole; export says
 * when its output cannot be written. */
static void
test_readers_refuse_damage(void **state)
{
	struct fixture *f = *state;
	struct errbuf err = { { 0 } };
	struct ledger *l = NULL;
	json_t *j = NULL;
	char *ents;
	size_t elen;
	FILE *ro;

	make_ledger(f, 5, 0);
	ents = slurp(f->entries, &elen);
	assert_int_equal(ledger_open(f->ldir, LEDGER_RO, &l, &err), 0);
	ro = fopen("/dev/null", "re");
	assert_non_null(ro);
	assert_true(ledger_export(l, ro, &err) < 0); /* a stream that cannot be written */
	fclose(ro);

	ents[1] ^= 0x20;
	spit(f->entries, ents, elen);
	assert_int_equal(ledger_show(l, 0, &j, &err), -EBADMSG);
	assert_string_equal(err.msg, "entries.log: not a ledger (bad magic)");
	assert_null(j);
	assert_int_equal(ledger_show(l, 2, &j, &err), -EBADMSG);
	assert_int_equal(ledger_export(l, stderr, &err), -EBADMSG);
	assert_int_equal(ledger_prove(l, 1, &j, &err), -EBADMSG);
	assert_int_equal(ledger_prove_consistency(l, 1, &j, &err), -EBADMSG);
	assert_null(j);
	ents[1] ^= 0x20;

	/* Entry 1 removed: the walk finds entry 2 where 1 should be and stops. */
	{
		size_t offs[8];
		char *cut = malloc(elen);

		assert_non_null(cut);
		assert_int_equal(record_offsets(ents, elen, offs, 7), 5);
		memcpy(cut, ents, offs[1]);
		memcpy(cut + offs[1], ents + offs[2], elen - offs[2]);
		spit(f->entries, cut, elen - (offs[2] - offs[1]));
		free(cut);
	}
	assert_int_equal(ledger_show(l, 0, &j, &err), -EBADMSG);
	assert_string_equal(err.msg, "entry 1 is damaged: run `ledger verify`");
	assert_null(j);
	ledger_close(l);
	free(ents);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_roundtrip_and_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_byte_flip_named, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_and_reorder, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_tail_recovery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rw_open_refuses_damage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checkpoint_signatures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rewritten_chain_caught_by_checkpoint, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_prove_and_verify_proof, setup, teardown),
		cmocka_unit_test_setup_teardown(test_show_and_export, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tick_checkpoint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zero_tail_and_quarantine, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trusted_checkpoint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads_append, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_during_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_consistency_proofs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_arguments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_missing_dirs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_signing_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quarantine_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_proof_tampering, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prove_before_checkpoint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_odd_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readers_refuse_damage, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
