/*
 * ctl_queue: `backmxctl queue ...` through backmxd's control socket
 * (src/ctl/control.h); `queue list` reads spool_dir/queue.db read-only
 * when the daemon does not answer.
 */
#ifndef BACKMX_CTL_QUEUE_H
#define BACKMX_CTL_QUEUE_H

struct config;

/* argv[0] is "queue". Returns the exit status (sysexits.h). */
int	ctl_queue(const struct config *, int argc, char **argv);

#endif
