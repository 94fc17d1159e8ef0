/* cluster.c - `logcaster cluster`: what a cluster node knows, from the cluster_* lines of its
 * STATS: the members, each partition's copies with what this node holds of them, and the
 * publish figures. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/cli.h"
#include "client/query.h"

const char lcc_cluster_help[] =
    "usage: logcaster cluster [options]\n"
    "\n"
    "Show a cluster node's view of the cluster (from its STATS): the members, which nodes\n"
    "hold each partition caught up (the first is asked first), what this node holds with its\n"
    "replay lag, and the publish latency. Exit status 1 when the server is a single node.\n";

/* The value of "key value" in the lines, or NULL. */
static const char *find(char **lines, size_t n, const char *key)
{
    size_t kl = strlen(key);
    for (size_t i = 0; i < n; i++)
        if (strncmp(lines[i], key, kl) == 0 && lines[i][kl] == ' ')
            return lines[i] + kl + 1;
    return NULL;
}

static const char *or_dash(const char *s)
{
    return s ? s : "-";
}

int lcc_cmd_cluster(struct lcc_opts *o, int argc, char **argv)
{
    struct lcc_qargs a = {.no_expr = true};
    int rc = lcc_qargs_parse(o, argc, argv, lcc_cluster_help, &a);
    if (rc)
        return rc;
    free(a.expr);
    char err[256];
    struct lcc_qconn *q = lcc_qconn_open(o, err, sizeof(err));
    if (!q) {
        lcc_warn("%s", err);
        return LCC_EXIT_UNREACHABLE;
    }
    char **lines = NULL;
    size_t n = 0, cap = 0;
    rc = lcc_qconn_send(q, "STATS", NULL) < 0 ? LCC_EXIT_UNREACHABLE : 0;
    for (char *line; !rc;) {
        size_t len;
        int r = lcc_qconn_line(q, &line, &len);
        if (r != 1) {
            lcc_warn("reading STATS from %s:%d: %s", o->host, o->query_port,
                     r == 0 ? "connection closed" : strerror(-r));
            rc = LCC_EXIT_UNREACHABLE;
            break;
        }
        if (strcmp(line, "END") == 0)
            break;
        if (strncmp(line, "ERROR", 5) == 0) {
            fprintf(stderr, "%s\n", line);
            rc = LCC_EXIT_FAIL;
            break;
        }
        if (strncmp(line, "cluster_", 8) != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **g = realloc(lines, cap * sizeof(*g));
            if (!g) {
                rc = LCC_EXIT_FAIL;
                break;
            }
            lines = g;
        }
        lines[n++] = strdup(line);
    }
    lcc_qconn_close(q);
    if (!rc && !find(lines, n, "cluster_node")) {
        fprintf(stderr, "logcaster: %s:%d is a single node, not a cluster member\n", o->host,
                o->query_port);
        rc = LCC_EXIT_FAIL;
    }
    if (!rc) {
        printf("cluster %s, seen from node %s (%s)\n", or_dash(find(lines, n, "cluster_name")),
               or_dash(find(lines, n, "cluster_node")), or_dash(find(lines, n, "cluster_state")));
        printf("members (%s): %s\n", or_dash(find(lines, n, "cluster_members")),
               or_dash(find(lines, n, "cluster_member_names")));
        printf("published from here: %s batches, %s lines; latency avg %s us, max %s us; "
               "%s lines not confirmed\n",
               or_dash(find(lines, n, "cluster_published_batches")),
               or_dash(find(lines, n, "cluster_published_lines")),
               or_dash(find(lines, n, "cluster_publish_avg_us")),
               or_dash(find(lines, n, "cluster_publish_max_us")),
               or_dash(find(lines, n, "cluster_failed_lines")));
        printf("queries: %s asked of others, %s answered for others\n\n",
               or_dash(find(lines, n, "cluster_queries_out")),
               or_dash(find(lines, n, "cluster_queries_in")));
        printf("%-10s %-24s %s\n", "partition", "caught-up copies", "held here");
        int parts = atoi(or_dash(find(lines, n, "cluster_partitions")));
        for (int p = 0; p < parts; p++) {
            char key[48];
            snprintf(key, sizeof(key), "cluster_partition_%d_copies", p);
            const char *copies = find(lines, n, key);
            snprintf(key, sizeof(key), "cluster_partition_%d", p);
            printf("%-10d %-24s %s\n", p, or_dash(copies), or_dash(find(lines, n, key)));
        }
    }
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
    return rc;
}
