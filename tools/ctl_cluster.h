/* ctl_cluster: "backmxctl cluster status" (docs/cluster.md "Status"). */
#ifndef BACKMX_CTL_CLUSTER_H
#define BACKMX_CTL_CLUSTER_H

struct config;

/* argv[0] is "cluster". Returns the exit status. */
int	ctl_cluster(const struct config *, int argc, char **argv);

#endif
