/* irc_label.c - IRCv3 labeled-response (with batch): a client that negotiated it may tag a
 * command with "label=X", and gets the command's whole answer back marked with that label, so
 * it can match answers to commands without guessing. The dispatcher (irc.c) brackets each
 * labeled command with irc_label_begin/irc_label_end; in between, what the command sends to
 * that client (irc_send_tagged, the reply path) is captured here instead of queued. At the end
 * the capture goes out as:
 *   - nothing sent: "@label=X :server ACK";
 *   - one line: that line with the label added to its tags;
 *   - several: "@label=X BATCH +id labeled-response", each line with "batch=id", "BATCH -id".
 * Lines to other clients are not captured, nor the live log stream (irc_send_wire), nor
 * answers that come later from the query pool (replays, !query): those are not the reply.
 * Only one command runs at a time (one thread, one command per turn), so one capture is
 * enough. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "irc/irc_internal.h"

#define LABEL_MAX 64 /* The spec's longest label. */

static struct {
    struct irc_client *cl; /* Whose replies are captured; NULL for nobody. */
    char label[LABEL_MAX + 1];
    struct buf out; /* The captured lines, each ending in CR LF. */
    int lines;
    bool bypass;
} lr;

bool irc_tag_get(const char *tags, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = tags; p && *p;) {
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len >= nl && strncmp(p, name, nl) == 0 && (len == nl || p[nl] == '=')) {
            size_t vl = len > nl ? len - nl - 1 : 0;
            if (vl >= cap)
                vl = cap - 1;
            memcpy(out, p + nl + (len > nl), vl);
            out[vl] = 0;
            return true;
        }
        p = end ? end + 1 : NULL;
    }
    return false;
}

void irc_batch_id(char *out, size_t cap)
{
    static uint64_t seq;
    snprintf(out, cap, "%" PRIx64 "b%" PRIu64, (uint64_t)irc.started_ms & 0xffffff, ++seq);
}

/* A label goes back into our own output: printable ASCII only, none of IRC's separators. */
static bool label_ok(const char *s)
{
    if (!*s || strlen(s) > LABEL_MAX)
        return false;
    for (; *s; s++)
        if (*s <= ' ' || *s > '~' || *s == ';')
            return false;
    return true;
}

void irc_label_begin(struct irc_client *cl, const char *tags, const char *command)
{
    /* QUIT's answer is the connection's end: nothing to label. */
    if (!cl->cap_labeled || !tags || strcmp(command, "QUIT") == 0)
        return;
    char label[LABEL_MAX + 2];
    if (!irc_tag_get(tags, "label", label, sizeof(label)) || !label_ok(label))
        return;
    lr.cl = cl;
    memcpy(lr.label, label, strlen(label) + 1);
    lr.lines = 0;
    lr.bypass = false;
    buf_consume(&lr.out, buf_len(&lr.out));
}

bool irc_label_capturing(const struct irc_client *cl)
{
    return lr.cl == cl && !lr.bypass;
}

void irc_label_capture(const char *line, size_t len)
{
    if (buf_append(&lr.out, line, len) < 0 || buf_append(&lr.out, "\r\n", 2) < 0)
        return; /* Out of memory: the line is lost, as a full queue would lose it. */
    lr.lines++;
}

void irc_label_bypass(bool on)
{
    lr.bypass = on;
}

void irc_label_detach(const struct irc_client *cl, char *out, size_t cap)
{
    out[0] = 0;
    if (lr.cl != cl)
        return;
    snprintf(out, cap, "%s", lr.label);
    lr.cl = NULL;
    if (lr.lines)
        conn_write(cl->c, buf_head(&lr.out), buf_len(&lr.out));
}

/* Send line (without CR LF) to cl with tag added in front of its tags. */
static void send_with_tag(struct irc_client *cl, const char *tag, const char *line, size_t len)
{
    char buf[IRC_TAGS_MAX + IRC_LINE_MAX + 256];
    int n;
    if (line[0] == '@')
        n = snprintf(buf, sizeof(buf), "@%s;%.*s", tag, (int)len - 1, line + 1);
    else
        n = snprintf(buf, sizeof(buf), "@%s %.*s", tag, (int)len, line);
    if (n > 0)
        irc_send_tagged(cl, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

void irc_label_end(void)
{
    struct irc_client *cl = lr.cl;
    if (!cl)
        return;
    lr.cl = NULL;
    const char *p = buf_head(&lr.out), *end = p + buf_len(&lr.out);
    if (cl->closing) { /* Its last words (an ERROR line) still go out, unlabeled. */
        conn_write(cl->c, p, (size_t)(end - p));
        return;
    }
    char tag[LABEL_MAX + 16];
    snprintf(tag, sizeof(tag), "label=%s", lr.label);
    if (lr.lines == 0) {
        char ack[IRC_LINE_MAX];
        int n = snprintf(ack, sizeof(ack), ":%s ACK", irc.name);
        send_with_tag(cl, tag, ack, (size_t)n);
        return;
    }
    char id[40], btag[48];
    bool batch = lr.lines > 1 && cl->cap_batch;
    if (batch) {
        irc_batch_id(id, sizeof(id));
        snprintf(btag, sizeof(btag), "batch=%s", id);
        char start[IRC_LINE_MAX];
        int n = snprintf(start, sizeof(start), ":%s BATCH +%s labeled-response", irc.name, id);
        send_with_tag(cl, tag, start, (size_t)n);
    }
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = (size_t)(nl - p) - 1; /* Without CR LF. */
        if (batch)
            send_with_tag(cl, btag, p, len);
        else if (lr.lines == 1)
            send_with_tag(cl, tag, p, len);
        else
            irc_send_tagged(cl, p, len); /* Several lines, no batch capability: unlabeled. */
        p = nl + 1;
    }
    if (batch)
        irc_send(cl, ":%s BATCH -%s", irc.name, id);
}
