/* SPDX-License-Identifier: ISC */
/* Which relays an event goes to. A relay takes an event when its kind is listed and
 * every match_* glob that is set matches; a glob never matches a missing field. */
#include <fnmatch.h>
#include <stdlib.h>

#include "route.h"
#include "xmalloc.h"

static int
route_glob(const char *pattern, const char *value, int flags)
{
	if (pattern == NULL)
		return 1;
	if (value == NULL)
		return 0;
	return fnmatch(pattern, value, flags) == 0;
}

int
route_match(const struct config_relay *r, const struct webhook_event *ev)
{
	if ((r->kinds & (1u << ev->kind->id)) == 0)
		return 0;
	return route_glob(r->match_from, ev->from, 0) && route_glob(r->match_to, ev->to, 0) &&
	    route_glob(r->match_body, ev->body, FNM_CASEFOLD);
}

void
route_event(const struct config *cfg, struct webhook_event *ev)
{
	size_t i;

	for (i = 0; i < cfg->nrelays; i++) {
		if (!route_match(&cfg->relays[i], ev))
			continue;
		ev->relays = xreallocarray(ev->relays, ev->nrelays + 1, sizeof(*ev->relays));
		ev->relay_ordered = xreallocarray(ev->relay_ordered, ev->nrelays + 1, 1);
		ev->relay_ordered[ev->nrelays] = cfg->relays[i].ordered != 0;
		ev->relays[ev->nrelays++] = xstrdup(cfg->relays[i].name);
	}
}
