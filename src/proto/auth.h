/* auth.h - access on the line protocols (ingest and query ports): the "AUTH <token>" first
 * line, and their ERROR| words for a refused or timed-out connection (struct proto hooks). */
#ifndef LC_AUTH_H
#define LC_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "core/policy.h"

struct config;
struct conn;

/* Deal with a connection's first line for role. Returns 0 when it was an AUTH line and is
 * done (ok_reply, if not NULL, was sent), 1 when it is an ordinary line to handle (the role
 * needs no authentication), -1 when the connection must close (an ERROR|... line was sent:
 * authentication required, or a wrong secret, which also counts towards the lock-out).
 * any_case: "auth" in any letter case counts as AUTH. */
int auth_first_line(struct conn *c, enum policy_role role, const char *line, size_t len,
                    const char *ok_reply, bool any_case);

/* The same decision without writing anything: 0 an AUTH line that passed (or needed no
 * checking), 1 an ordinary line, -1 refused with *why set (static text, no "ERROR|"). */
int auth_check_line(struct conn *c, enum policy_role role, const char *line, size_t len,
                    bool any_case, const char **why);

/* The refuse hook of the line protocols: "ERROR|<reason>\n". */
int auth_refuse(char *out, size_t cap, const struct config *cfg, const char *peer,
                enum policy_verdict v);
/* The timeout hook of the line protocols: "ERROR|line not completed within N s\n". */
int auth_line_timeout(struct conn *c, char *out, size_t cap);

#endif
