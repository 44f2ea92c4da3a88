/* SPDX-License-Identifier: ISC */
/* The version string shown by -V and sent as User-Agent. */
#ifndef VERSION_H
#define VERSION_H

#include "autoconf.h"
#define RELAY_VERSION	 PACKAGE_VERSION
#define RELAY_USER_AGENT "clicksend-relay/" PACKAGE_VERSION

#endif
