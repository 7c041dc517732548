/*
 * recipient: the backup-mode RCPT step of what backmx knows of the domain and
 * the address (docs/architecture.md §5–§6, learn.h). Runs only when the message
 * would be stored (the primary is down), before greylisting:
 *
 *   domain learning or refused         450 4.7.1
 *   address invalid (the primary said
 *   it does not exist)                 450 4.1.1
 *   address unknown                    450 4.1.1, and a callout is queued
 *                                      (accepted with accept_unverified)
 *   address valid                      on to greylisting
 *
 * Never a 5xx: the primary may know better once it is back, and a sender
 * that retries finds the answer learned meanwhile. A store error is 451
 * 4.3.0.
 */
#ifndef BACKMX_RECIPIENT_H
#define BACKMX_RECIPIENT_H

struct policy_check;

void	recipient_step(struct policy_check *);

#endif
