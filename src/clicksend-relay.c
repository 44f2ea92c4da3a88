/* SPDX-License-Identifier: ISC */
/* clicksend-relay, the operator tool: reads and changes the store named by the config. */
#include <stdio.h>
#include <string.h>

#include "version.h"

int
main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "-V") == 0) {
		printf("clicksend-relay %s\n", RELAY_VERSION);
		return 0;
	}
	fprintf(stderr, "clicksend-relay: commands arrive with the relay engine\n");
	return 64;
}
