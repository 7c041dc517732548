/*
 * ctl_cluster: the cluster as one node sees it (docs/cluster.md "Status").
 *
 *   cluster status [--json]   the Redis server, connected or not, the
 *                             circuit breaker, request, error and timeout
 *                             counts, the replay queue, the nodes seen
 *
 * Only the running daemon knows this (its connection, its counters): no
 * offline fallback. Exit 0, 1 no cluster (redis_servers is empty), 64
 * usage, 69 daemon not reachable.
 */
#include "ctl_cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "ctl_conn.h"

static void
usage(void)
{
	fprintf(stderr, "usage: backmxctl [-c config] cluster status "
	    "[--json]\n");
	exit(64);
}

int
ctl_cluster(const struct config *conf, int argc, char **argv)
{
	char *w[2];
	int json = 0, n;

	if ((n = ctl_args(argc, argv, NULL, NULL, &json, w, 2)) != 1 ||
	    strcmp(w[0], "status") != 0)
		usage();
	return ctl_request(conf, json ? "cluster status json\n" :
	    "cluster status\n", NULL, 0);
}
