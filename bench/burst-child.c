/* burst-child: the short-lived process of the burst benchmark and the eBPF
 * tests. Linked statically so that exec is as cheap as the kernel allows and
 * the process lives for well under a millisecond. Exits with the status given
 * as its second argument (0 by default); the first is the caller's marker. */
#include <stdlib.h>
#include <unistd.h>

int
main(int argc, char **argv)
{
	int code = 0;

	if (argc > 2)
		code = (int)strtol(argv[2], NULL, 10) & 0xff;
	_exit(code);
}
