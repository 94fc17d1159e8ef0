/* auth.c - the AUTH first line, refusals and line timeouts of the line protocols (auth.h). */
#include "proto/auth.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/config.h"
#include "core/log.h"
#include "core/server.h"

int auth_check_line(struct conn *c, enum policy_role role, const char *line, size_t len,
                    bool any_case, const char **why)
{
    bool is_auth =
        len >= 5 && (any_case ? strncasecmp(line, "AUTH ", 5) == 0 : memcmp(line, "AUTH ", 5) == 0);
    if (!policy_auth_required(role))
        return is_auth ? 0 : 1;
    if (!is_auth) {
        *why = "authentication required: send AUTH <token> first";
        return -1;
    }
    size_t tl = len - 5;
    const char *tok = line + 5;
    while (tl && tok[tl - 1] == ' ')
        tl--;
    if (!policy_check_token(role, conn_sockaddr(c), tok, tl, mono_ms())) {
        size_t plen;
        log_warn("%s: authentication failed from %s", role == ROLE_LOG ? "ingest" : "query",
                 conn_peer(c, &plen));
        *why = "authentication failed";
        return -1;
    }
    return 0;
}

int auth_first_line(struct conn *c, enum policy_role role, const char *line, size_t len,
                    const char *ok_reply, bool any_case)
{
    const char *why = NULL;
    int a = auth_check_line(c, role, line, len, any_case, &why);
    if (a < 0)
        conn_printf(c, "ERROR|%s\n", why);
    else if (a == 0 && ok_reply)
        conn_write(c, ok_reply, strlen(ok_reply));
    return a;
}

int auth_refuse(char *out, size_t cap, const struct config *cfg, const char *peer,
                enum policy_verdict v)
{
    (void)cfg;
    (void)peer;
    return snprintf(out, cap, "ERROR|%s\n", policy_verdict_text(v));
}

int auth_line_timeout(struct conn *c, char *out, size_t cap)
{
    return snprintf(out, cap, "ERROR|line not completed within %d s\n",
                    conn_config(c)->line_timeout_s);
}
