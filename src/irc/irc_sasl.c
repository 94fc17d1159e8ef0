/* irc_sasl.c - SASL PLAIN authentication (IRCv3 sasl 3.1/3.2) during registration, the way
 * WeeChat, irssi and HexChat log in:
 *   CAP REQ :sasl, AUTHENTICATE PLAIN, "AUTHENTICATE +" back, AUTHENTICATE <base64 of
 *   authzid NUL authcid NUL password> (in 400-byte pieces), then 900 and 903, or 904.
 * What it checks:
 *   - the password is one of the IRC tokens (--irc-token, as PASS checks it): the client is
 *     logged in as the authcid it gave. Anyone holding a token is trusted, so the account name
 *     is the holder's own choice, the way a nick is;
 *   - or authcid and password are the --irc-oper pair: logged in as that name (OPER is still
 *     needed for +o).
 * With no --irc-token set the server needs no password, and only the operator pair logs in:
 * any other password would prove nothing. A failure counts towards the address's lock-out
 * like a wrong PASS; after three on one connection AUTHENTICATE answers only 904. A success
 * stands in for PASS, which keeps working for clients without SASL. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/policy.h"
#include "irc/irc_internal.h"

#define SASL_PIECE     400  /* AUTHENTICATE carries at most this much base64 per line. */
#define SASL_MAX       1200 /* The whole payload, base64: PLAIN's three fields fit easily. */
#define SASL_MAX_FAILS 3

void irc_sasl_free(struct irc_client *cl)
{
    if (cl->sasl_buf)
        explicit_bzero(cl->sasl_buf, cl->sasl_len); /* It holds the password, encoded. */
    free(cl->sasl_buf);
    cl->sasl_buf = NULL;
    cl->sasl_len = 0;
    cl->sasl_state = 0;
}

/* Standard base64 with padding; returns the decoded length, or -1 on a bad character. */
static int b64_decode(const char *in, size_t n, unsigned char *out, size_t cap)
{
    unsigned acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        int v = c >= 'A' && c <= 'Z'   ? c - 'A'
                : c >= 'a' && c <= 'z' ? c - 'a' + 26
                : c >= '0' && c <= '9' ? c - '0' + 52
                : c == '+'             ? 62
                : c == '/'             ? 63
                                       : -1;
        if (c == '=')
            break;
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap)
                return -1;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return (int)o;
}

static void fail(struct irc_client *cl)
{
    cl->sasl_failures++;
    irc_sasl_free(cl);
    irc_numeric(cl, 904, ":SASL authentication failed");
}

/* The decoded PLAIN message: authzid NUL authcid NUL password. */
static void check_plain(struct irc_client *cl, const unsigned char *m, size_t n)
{
    const unsigned char *nul1 = memchr(m, 0, n);
    const unsigned char *nul2 = nul1 ? memchr(nul1 + 1, 0, n - (size_t)(nul1 + 1 - m)) : NULL;
    if (!nul2) {
        fail(cl);
        return;
    }
    char authzid[IRC_ACCOUNTLEN + 2], authcid[IRC_ACCOUNTLEN + 2], pass[SASL_MAX];
    size_t zl = (size_t)(nul1 - m), cl_ = (size_t)(nul2 - nul1 - 1),
           pl = n - (size_t)(nul2 + 1 - m);
    if (zl > IRC_ACCOUNTLEN || cl_ == 0 || cl_ > IRC_ACCOUNTLEN || pl >= sizeof(pass)) {
        fail(cl);
        return;
    }
    memcpy(authzid, m, zl);
    authzid[zl] = 0;
    memcpy(authcid, nul1 + 1, cl_);
    authcid[cl_] = 0;
    memcpy(pass, nul2 + 1, pl);
    pass[pl] = 0;
    /* An account name goes into WHOIS, tags and JOIN lines: a nick's characters only. */
    bool ok = irc_nick_valid(authcid) && (!zl || strcmp(authzid, authcid) == 0);
    if (ok && irc_oper_matches(authcid, pass)) {
        ok = true;
    } else if (ok && policy_auth_required(ROLE_IRC)) {
        ok = policy_check_token(ROLE_IRC, conn_sockaddr(cl->c), pass, pl, mono_ms());
    } else {
        ok = false;
    }
    explicit_bzero(pass, sizeof(pass));
    if (!ok) {
        log_warn("irc: SASL PLAIN failed for %s from %s", authcid, cl->host);
        fail(cl);
        return;
    }
    memcpy(cl->account, authcid, cl_ + 1); /* cl_ <= IRC_ACCOUNTLEN, checked above. */
    cl->pass_ok = true;
    cl->pass_bad = false; /* A wrong PASS before it is forgiven: this proved the secret. */
    irc_sasl_free(cl);
    irc_numeric(cl, 900, "%s!%s@%s %s :You are now logged in as %s", cl->nick[0] ? cl->nick : "*",
                cl->user[0] ? cl->user : "*", cl->host, cl->account, cl->account);
    irc_numeric(cl, 903, ":SASL authentication successful");
}

void irc_cmd_authenticate(struct irc_client *cl, int argc, char **argv)
{
    (void)argc;
    const char *a = argv[0];
    if (!cl->cap_sasl) {
        irc_numeric(cl, 904, ":SASL authentication failed (CAP REQ :sasl first)");
        return;
    }
    if (cl->account[0]) {
        irc_numeric(cl, 907, ":You have already authenticated using SASL");
        return;
    }
    if (strcmp(a, "*") == 0) {
        irc_sasl_free(cl);
        irc_numeric(cl, 906, ":SASL authentication aborted");
        return;
    }
    if (cl->sasl_failures >= SASL_MAX_FAILS) {
        irc_numeric(cl, 904, ":SASL authentication failed (too many attempts)");
        return;
    }
    if (cl->sasl_state == 0) {
        if (strcasecmp(a, "PLAIN") != 0) {
            irc_numeric(cl, 908, "PLAIN :are available SASL mechanisms");
            irc_numeric(cl, 904, ":SASL authentication failed");
            return;
        }
        cl->sasl_state = 1;
        irc_send(cl, "AUTHENTICATE +");
        return;
    }
    size_t n = strlen(a);
    if (n > SASL_PIECE) {
        irc_sasl_free(cl);
        irc_numeric(cl, 905, ":SASL message too long");
        return;
    }
    if (strcmp(a, "+") != 0) {
        if (cl->sasl_len + n > SASL_MAX) {
            irc_sasl_free(cl);
            irc_numeric(cl, 905, ":SASL message too long");
            return;
        }
        char *b = realloc(cl->sasl_buf, cl->sasl_len + n + 1);
        if (!b) {
            fail(cl);
            return;
        }
        memcpy(b + cl->sasl_len, a, n);
        cl->sasl_buf = b;
        cl->sasl_len += n;
        if (n == SASL_PIECE)
            return; /* A full piece: more follows (or "+"). */
    }
    unsigned char msg[SASL_MAX];
    int len = b64_decode(cl->sasl_buf ? cl->sasl_buf : "", cl->sasl_len, msg, sizeof(msg));
    if (len < 0)
        fail(cl);
    else
        check_plain(cl, msg, (size_t)len);
    explicit_bzero(msg, sizeof(msg));
}
