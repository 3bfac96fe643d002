/* drivers: the table of this server's drivers, by name (see driver.h). A handful at most,
 * so a small array. */
#include "driver/driver.h"
#include "util/buf.h"
#include <stdlib.h>
#include <string.h>

struct drivers {
	struct driver **v;
	size_t n;
};

struct drivers *drivers_new(void)
{
	return xcalloc(1, sizeof(struct drivers));
}

void drivers_add(struct drivers *ds, struct driver *d)
{
	ds->v = xrealloc(ds->v, (ds->n + 1) * sizeof *ds->v);
	ds->v[ds->n++] = d;
}

struct driver *drivers_get(const struct drivers *ds, const char *name)
{
	for (size_t k = 0; ds && k < ds->n; k++)
		if (!strcmp(ds->v[k]->name, name))
			return ds->v[k];
	return NULL;
}

size_t drivers_count(const struct drivers *ds)
{
	return ds ? ds->n : 0;
}

struct driver *drivers_at(const struct drivers *ds, size_t i)
{
	return i < ds->n ? ds->v[i] : NULL;
}

void drivers_free(struct drivers *ds)
{
	if (!ds)
		return;
	for (size_t k = ds->n; k-- > 0;)
		ds->v[k]->free(ds->v[k]);
	free(ds->v);
	free(ds);
}
