/*
 * ctl_domain: `backmxctl domain ...` and `backmxctl recipients ...`
 * through backmxd's control socket (src/ctl/control.h); the reads fall
 * back to state_dir/state.db when the daemon does not answer.
 */
#ifndef BACKMX_CTL_DOMAIN_H
#define BACKMX_CTL_DOMAIN_H

struct config;

/* argv[0] is "domain" or "recipients". Returns the exit status
 * (sysexits.h). */
int	ctl_domain(const struct config *, int argc, char **argv);

#endif
