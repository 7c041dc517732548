/*
 * backmxctl: the operator's tool. Reads the same backmx.conf as backmxd.
 *
 *   backmxctl [-c FILE] config [-n]   effective configuration (-n: only
 *                                     what differs from the defaults)
 *   backmxctl [-c FILE] status [--json]  the running daemon: pid, uptime,
 *                                     domains, the event loop's lag
 *   backmxctl [-c FILE] greylist ...  triplets, networks, allow entries
 *                                     (tools/ctl_greylist.c)
 *   backmxctl [-c FILE] bulk ...      the bulk detector's digests
 *                                     (tools/ctl_bulk.c)
 *   backmxctl [-c FILE] queue ...     the queue, through backmxd's
 *                                     control socket (tools/ctl_queue.c)
 *   backmxctl [-c FILE] domain ...    customer domains' lifecycle, health,
 *   backmxctl [-c FILE] recipients ...  recipients (tools/ctl_domain.c)
 *   backmxctl [-c FILE] cluster status  the shared state through Redis
 *                                     (tools/ctl_cluster.c)
 *
 * Exit codes follow <sysexits.h>: 64 usage, 78 configuration error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "ctl_conn.h"
#include "ctl_cluster.h"
#include "ctl_bulk.h"
#include "ctl_domain.h"
#include "ctl_greylist.h"
#include "ctl_queue.h"

static void
usage(void)
{
	fprintf(stderr, "usage: backmxctl [-c config] config [-n]\n"
	    "       backmxctl [-c config] status [--json]\n"
	    "       backmxctl [-c config] greylist list|allow|delete ...\n"
	    "       backmxctl [-c config] bulk list|forget ...\n"
	    "       backmxctl [-c config] queue list|show|flush|delete|hold|"
	    "release ...\n"
	    "       backmxctl [-c config] domain list|show ...\n"
	    "       backmxctl [-c config] recipients list|add|delete ...\n"
	    "       backmxctl [-c config] cluster status [--json]\n");
	exit(64);
}

int
main(int argc, char **argv)
{
	const char *path = "/etc/backmx/backmx.conf";
	struct config conf;
	char err[1024];
	int ch;

	while ((ch = getopt(argc, argv, "+c:h")) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage();

	config_defaults(&conf);
	if (config_load(&conf, path, err, sizeof(err)) == -1) {
		fprintf(stderr, "backmxctl: %s\n", err);
		return 78;
	}
	if (strcmp(argv[0], "config") == 0) {
		int only_changed = argc > 1 && strcmp(argv[1], "-n") == 0;

		if (argc > 2 || (argc == 2 && !only_changed))
			usage();
		config_print(&conf, stdout, only_changed);
		return 0;
	}
	if (strcmp(argv[0], "status") == 0) {
		int json = argc == 2 && strcmp(argv[1], "--json") == 0;

		if (argc > 2 || (argc == 2 && !json))
			usage();
		return ctl_request(&conf, json ? "status json\n" :
		    "status\n", NULL, 0);
	}
	if (strcmp(argv[0], "greylist") == 0)
		return ctl_greylist(&conf, argc, argv);
	if (strcmp(argv[0], "bulk") == 0)
		return ctl_bulk(&conf, argc, argv);
	if (strcmp(argv[0], "queue") == 0)
		return ctl_queue(&conf, argc, argv);
	if (strcmp(argv[0], "domain") == 0 ||
	    strcmp(argv[0], "recipients") == 0)
		return ctl_domain(&conf, argc, argv);
	if (strcmp(argv[0], "cluster") == 0)
		return ctl_cluster(&conf, argc, argv);
	usage();
}
