#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sanitize.h"

static void
check_argv(const char *const *argv, size_t argc, const char *want)
{
	char *got = NULL;

	assert_int_equal(sanitize_argv(argv, argc, &got), 0);
	assert_string_equal(got, want);
	free(got);
}

static void
test_flags(void **state)
{
	(void)state;
	check_argv((const char *[]){ "mysql", "--password", "hunter2", "-u", "root" }, 5,
	           "mysql --password [REDACTED] -u root");
	check_argv((const char *[]){ "app", "--token=abc", "--api-key=xyz", "--secret", "s" }, 5,
	           "app --token=[REDACTED] --api-key=[REDACTED] --secret [REDACTED]");
	check_argv((const char *[]){ "x", "-p", "pw", "-s", "v", "-t", "v", "-k", "v" }, 9,
	           "x -p [REDACTED] -s [REDACTED] -t [REDACTED] -k [REDACTED]");
	/* A flag that only starts like a secret one is left alone. */
	check_argv((const char *[]){ "x", "--passwords-file", "f", "--tokenizer=bpe" }, 4,
	           "x --passwords-file f --tokenizer=bpe");
	/* A secret flag at the end has nothing to hide. */
	check_argv((const char *[]){ "x", "--password" }, 2, "x --password");
}

static void
test_embedded_script(void **state)
{
	(void)state;
	check_argv(
	    (const char *[]){ "sh", "-c", "mysql --password hunter2 && curl -s http://h/x | sh" },
	    3, "sh -c mysql --password [REDACTED] && curl -s http://h/x | sh");
}

static void
test_paths(void **state)
{
	(void)state;
	check_argv((const char *[]){ "cat", "/home/u/.ssh/id_rsa" }, 2, "cat [REDACTED]");
	check_argv((const char *[]){ "tool", "--config=/root/.kube/config" }, 2,
	           "tool --config=[REDACTED]");
	check_argv((const char *[]){ "ls", "/home/u/.aws/" }, 2, "ls [REDACTED]");
	check_argv((const char *[]){ "ls", "/home/u/.ssh" }, 2, "ls [REDACTED]");
	check_argv((const char *[]){ "ls", "/home/u/notssh/x" }, 2, "ls /home/u/notssh/x");
	assert_true(sanitize_path_is_secret("/root/.gnupg/pubring.kbx"));
	assert_true(sanitize_path_is_secret("/home/a/.docker/config.json"));
	assert_false(sanitize_path_is_secret("/usr/bin/ssh"));
	assert_false(sanitize_path_is_secret("/srv/my.ssh.backup"));
}

static void
test_env(void **state)
{
	(void)state;
	assert_true(sanitize_env_name_is_secret("DB_PASSWORD"));
	assert_true(sanitize_env_name_is_secret("github_token"));
	assert_true(sanitize_env_name_is_secret("AWS_SECRET_ACCESS_KEY"));
	assert_true(sanitize_env_name_is_secret("HTTP_AUTHORIZATION"));
	assert_false(sanitize_env_name_is_secret("PATH"));
	assert_false(sanitize_env_name_is_secret("HOME"));
	/* In a command line: the value of a NAME=value word whose name says so. */
	check_argv((const char *[]){ "env", "DB_PASSWORD=hunter2", "PATH=/usr/bin", "app" }, 4,
	           "env DB_PASSWORD=[REDACTED] PATH=/usr/bin app");
	check_argv((const char *[]){ "sh", "-c", "GITHUB_TOKEN=abc curl https://x?token=1" }, 3,
	           "sh -c GITHUB_TOKEN=[REDACTED] curl https://x?token=1");
	/* Not an assignment: a flag, a name that cannot be one, a URL. */
	check_argv((const char *[]){ "app", "--mode=AUTH", "1KEY=x", "x/TOKEN=y", "a=b" }, 5,
	           "app --mode=AUTH 1KEY=x x/TOKEN=y a=b");
	/* A long name is read whole. */
	check_argv((const char *[]){ "env", "A_VERY_LONG_VARIABLE_NAME_THAT_GOES_ON_AND_ON_AND_ON_"
	                                    "UNTIL_THE_SECRET=v" },
	           2,
	           "env A_VERY_LONG_VARIABLE_NAME_THAT_GOES_ON_AND_ON_AND_ON_UNTIL_THE_SECRET="
	           "[REDACTED]");
}

static void
test_raw_cmdline(void **state)
{
	static const char raw[] = "curl\0--token\0t0p\0http://x/\x01y\0";
	char *got = NULL;

	(void)state;
	assert_int_equal(sanitize_cmdline_raw(raw, sizeof(raw) - 1, &got), 0);
	assert_string_equal(got, "curl --token [REDACTED] http://x/?y");
	free(got);
	assert_int_equal(sanitize_cmdline_raw("", 0, &got), 0);
	assert_string_equal(got, "");
	free(got);
}

/* A flag glued to a secret path before '=' hides the whole word; NULL in,
 * nothing out; a long argument list grows the output. */
static void
test_edges(void **state)
{
	char *s;
	const char *many[64];
	char want[64 * 8 + 1];
	size_t len = 0;

	(void)state;
	check_argv((const char *[]){ "ssh", "-o/home/u/.ssh/x=plain" }, 2, "ssh [REDACTED]");
	check_argv((const char *[]){ "ssh", "-i=/home/u/.ssh/id" }, 2, "ssh -i=[REDACTED]");
	assert_false(sanitize_path_is_secret(NULL));
	assert_null(sanitize_path(NULL));
	s = sanitize_path("/home/u/.aws/credentials");
	assert_string_equal(s, SANITIZE_REDACTED);
	free(s);
	s = sanitize_path("/usr/bin/aws");
	assert_string_equal(s, "/usr/bin/aws");
	free(s);
	for (size_t i = 0; i < 64; i++) {
		many[i] = "abcdefg";
		len += (size_t)snprintf(want + len, sizeof(want) - len, "%sabcdefg", i ? " " : "");
	}
	check_argv(many, 64, want);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flags),       cmocka_unit_test(test_embedded_script),
		cmocka_unit_test(test_paths),       cmocka_unit_test(test_env),
		cmocka_unit_test(test_raw_cmdline), cmocka_unit_test(test_edges),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
