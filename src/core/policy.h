/* policy.h - who may connect to a listener, how often, how many at once, with which secret.
 *
 * Each listener role (log, query, irc, http) has a policy: allow and deny lists of CIDR
 * ranges, authentication tokens, a connection rate per source address (token bucket), and
 * caps on concurrent connections per source address and in total. The admission check runs
 * at accept, before a byte is read; authentication runs in each protocol (AUTH, PASS,
 * Authorization: Bearer) and reports failures here, so a source that keeps guessing is shut
 * out for a while. The live policies can be replaced (SIGHUP) while connections come and go. */
#ifndef LC_POLICY_H
#define LC_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define POLICY_MAX_CIDRS  32
#define POLICY_MAX_TOKENS 4
#define POLICY_TOKEN_MAX  128

enum policy_role { ROLE_LOG, ROLE_QUERY, ROLE_IRC, ROLE_HTTP, ROLE_COUNT };

struct cidr {
    int family;       /* AF_INET or AF_INET6. */
    uint8_t addr[16]; /* Network address (4 bytes used for IPv4). */
    int bits;
};

struct policy {
    struct cidr allow[POLICY_MAX_CIDRS]; /* Empty: any address. */
    int nallow;
    struct cidr deny[POLICY_MAX_CIDRS];
    int ndeny;
    bool auth;                                        /* Authentication required... */
    char tokens[POLICY_MAX_TOKENS][POLICY_TOKEN_MAX]; /* ...with one of these secrets. */
    int ntokens;
    double conn_rate;     /* New connections per second per source address; 0 = no limit. */
    int conn_burst;       /* New connections at once per source address; 0 = conn_rate. */
    int max_conns_per_ip; /* 0 = no limit. */
    int max_conns;        /* Concurrent connections on the role's listeners; 0 = no limit. */
    double line_rate;     /* Ingest lines per second per connection; 0 = no limit. */
};

/* Parse "10.0.0.0/8", "::1", "192.168.1.7" (a host is /32 or /128). Returns 0 or -1. */
int cidr_parse(const char *s, struct cidr *out);
/* Parse a comma-separated list into out (appending). Returns 0, or -1 with the bad item
 * copied to bad[0..badcap). */
int cidr_list_parse(const char *s, struct cidr *out, int *n, int max, char *bad, size_t badcap);
bool cidr_match(const struct cidr *c, const struct sockaddr *sa);

/* Install the policies (copied). Called at start-up and on reload, from any thread. */
void policy_set(const struct policy pol[ROLE_COUNT]);

/* Why a connection was refused, for the rejection message and the log. */
enum policy_verdict {
    POLICY_OK,
    POLICY_DENIED,      /* Not in the allow list, or in the deny list. */
    POLICY_RATE,        /* Too many new connections per second from this address. */
    POLICY_PER_IP,      /* Too many concurrent connections from this address. */
    POLICY_TOTAL,       /* Too many concurrent connections on the role. */
    POLICY_AUTH_BANNED, /* Too many failed authentications from this address lately. */
    POLICY_LOCAL_ONLY,  /* The role needs a secret and has none: loopback clients only. */
    POLICY_VERDICTS,
};
const char *policy_verdict_text(enum policy_verdict v);

/* Admission at accept: sa is the peer, local the address it connected to (a role that needs
 * a secret and has none serves only connections made to 127.0.0.1 or ::1, as if it listened
 * there alone). On POLICY_OK the connection is counted until policy_release. */
enum policy_verdict policy_admit(enum policy_role role, const struct sockaddr *sa,
                                 const struct sockaddr *local, int64_t now_ms);
void policy_release(enum policy_role role, const struct sockaddr *sa);
/* Only the allow and deny lists (for UDP datagrams, which have no connection). */
bool policy_allows(enum policy_role role, const struct sockaddr *sa);

/* Authentication: true when the role needs none, or token[0..len) is one of its secrets
 * (compared in constant time). A failure is counted against the source address: five within
 * a minute shut it out (POLICY_AUTH_BANNED) for a minute. */
bool policy_auth_required(enum policy_role role);
bool policy_check_token(enum policy_role role, const struct sockaddr *sa, const char *token,
                        size_t len, int64_t now_ms);

/* The role's ingest line rate (0 = none). */
double policy_line_rate(enum policy_role role);

struct policy_counters {
    uint64_t refused[POLICY_VERDICTS]; /* By verdict (index POLICY_*). */
    uint64_t auth_ok, auth_failed;
};
void policy_get_counters(struct policy_counters *out);

void policy_free(void); /* At exit: forget every address. */

#endif
