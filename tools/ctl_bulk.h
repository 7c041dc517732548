/*
 * ctl_bulk: `backmxctl bulk ...`, the bulk detector's digests
 * (docs/bulk.md §6): list reads state_dir/state.db beside the daemon;
 * forget asks the running daemon, which writes its own store.
 */
#ifndef BACKMX_CTL_BULK_H
#define BACKMX_CTL_BULK_H

struct config;

/* argv[0] is "bulk". Returns the exit status (sysexits.h). */
int	ctl_bulk(const struct config *, int argc, char **argv);

#endif
