/*
 * ctl_greylist: `backmxctl greylist ...`, straight on state_dir/state.db
 * beside a running backmxd (WAL lets both in; a busy timeout waits out
 * the daemon's short transactions). The daemon keeps no cache of what
 * this changes: its next check reads it.
 */
#ifndef BACKMX_CTL_GREYLIST_H
#define BACKMX_CTL_GREYLIST_H

struct config;

/* argv[0] is "greylist". Returns the exit status (sysexits.h). */
int	ctl_greylist(const struct config *, int argc, char **argv);

#endif
