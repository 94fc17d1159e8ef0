/* spill.c - the spill file: entries that did not fit in the queue, kept on disk in order until
 * the senders have room for them again.
 *
 * Layout: a 16-byte header, "LCSPILL1" and the offset (u64 little-endian) of the first record
 * not yet taken back, then records appended one after another:
 *
 *     len u32 LE | crc32 u32 LE | level u8 | ts_ms i64 LE | message      len = 9 + message bytes
 *
 * The crc covers len and the payload, so a torn append (the process died in write()) or a
 * damaged record is found when the file is opened again, and the file is cut there. The header's
 * offset is rewritten each time records are taken back, so a new process sends only what an
 * earlier one had not taken. Records taken back but not yet acknowledged when a process dies
 * are lost unless lc_close() saved them (it writes them back in front). The file is not
 * fsync()ed on every append: it survives the process, not a crash of the machine. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "lc_internal.h"

#define MAGIC      "LCSPILL1"
#define SPILL_HDR  16
#define REC_HDR    8 /* len, crc */
#define REC_FIXED  (REC_HDR + LCL_LOG_FIXED)
#define REC_MAXLEN (LCL_LOG_FIXED + LC_MAX_MESSAGE)
#define CHUNK      (256 * 1024)

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t lcl_crc32(uint32_t crc, const void *p, size_t n)
{
    pthread_once(&crc_once, crc_init);
    const unsigned char *b = p;
    crc = ~crc;
    while (n--)
        crc = crc_table[(crc ^ *b++) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

static void put32le(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get32le(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void put64le(unsigned char *p, uint64_t v)
{
    put32le(p, (uint32_t)v);
    put32le(p + 4, (uint32_t)(v >> 32));
}
static uint64_t get64le(const unsigned char *p)
{
    return get32le(p) | (uint64_t)get32le(p + 4) << 32;
}

static int write_all_at(int fd, const void *p, size_t n, off_t off)
{
    const char *c = p;
    while (n) {
        ssize_t w = pwrite(fd, c, n, off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EIO;
        c += w, n -= (size_t)w, off += w;
    }
    return 0;
}

static int write_header(int fd, uint64_t read_off)
{
    unsigned char h[SPILL_HDR];
    memcpy(h, MAGIC, 8);
    put64le(h + 8, read_off);
    return write_all_at(fd, h, sizeof h, 0);
}

/* The length of the valid record at buf[0..n), 0 if it is incomplete in buf, -1 if invalid. */
static long record_at(const unsigned char *buf, size_t n)
{
    if (n < REC_HDR)
        return 0;
    uint32_t len = get32le(buf);
    if (len < LCL_LOG_FIXED || len > REC_MAXLEN || buf[REC_HDR] > LC_LOG_FATAL)
        return -1;
    if (n < REC_HDR + len)
        return 0;
    uint32_t crc = lcl_crc32(lcl_crc32(0, buf, 4), buf + REC_HDR, len);
    return crc == get32le(buf + 4) ? (long)(REC_HDR + len) : -1;
}

/* Count the valid records from sp->read_off; cut the file after the last one. */
static int scan(struct lcl_spill *sp, off_t size, char *err, size_t errlen)
{
    unsigned char *buf = malloc(CHUNK);
    if (!buf)
        return -ENOMEM;
    uint64_t off = sp->read_off;
    size_t have = 0;
    int rc = 0;
    for (;;) {
        ssize_t r = pread(sp->fd, buf + have, CHUNK - have, (off_t)(off + have));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -errno;
            goto out;
        }
        have += (size_t)r;
        size_t pos = 0;
        long len;
        while ((len = record_at(buf + pos, have - pos)) > 0) {
            pos += (size_t)len;
            sp->count++;
        }
        off += pos;
        have -= pos;
        memmove(buf, buf + pos, have);
        if (len < 0 || r == 0)
            break;
    }
    if ((off_t)off < size) {
        snprintf(err, errlen, "spill file %s: %lld bytes of a torn or damaged tail cut off",
                 sp->path, (long long)(size - (off_t)off));
        if (ftruncate(sp->fd, (off_t)off) < 0)
            rc = -errno;
    }
    sp->end_off = off;
out:
    free(buf);
    return rc;
}

int lcl_spill_open(struct lcl_spill *sp, const char *path, char *err, size_t errlen)
{
    memset(sp, 0, sizeof *sp);
    sp->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (sp->fd < 0) {
        int e = errno;
        snprintf(err, errlen, "spill file %s: %s", path, strerror(e));
        return -e;
    }
    int rc;
    if (flock(sp->fd, LOCK_EX | LOCK_NB) < 0) {
        rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
        snprintf(err, errlen, "spill file %s: %s", path,
                 rc == -EBUSY ? "in use by another client" : strerror(-rc));
        goto fail;
    }
    if (!(sp->path = strdup(path))) {
        rc = -ENOMEM;
        goto fail;
    }
    struct stat st;
    if (fstat(sp->fd, &st) < 0) {
        rc = -errno;
        goto fail;
    }
    unsigned char h[SPILL_HDR];
    if (st.st_size < SPILL_HDR) {
        /* New, or torn while it was being created. */
        if (ftruncate(sp->fd, 0) < 0) {
            rc = -errno;
            goto fail;
        }
        if ((rc = write_header(sp->fd, SPILL_HDR)) < 0)
            goto fail;
        sp->read_off = sp->end_off = SPILL_HDR;
        return 0;
    }
    if (pread(sp->fd, h, sizeof h, 0) != (ssize_t)sizeof h || memcmp(h, MAGIC, 8) != 0) {
        snprintf(err, errlen, "%s is not a LogCaster spill file", path);
        rc = -EINVAL;
        goto fail;
    }
    sp->read_off = get64le(h + 8);
    if (sp->read_off < SPILL_HDR || sp->read_off > (uint64_t)st.st_size)
        sp->read_off = SPILL_HDR; /* Damaged header: resending is better than losing. */
    if ((rc = scan(sp, st.st_size, err, errlen)) < 0)
        goto fail;
    return 0;
fail:
    if (!err[0])
        snprintf(err, errlen, "spill file %s: %s", path, strerror(-rc));
    close(sp->fd);
    free(sp->path);
    sp->path = NULL;
    sp->fd = -1;
    return rc;
}

int lcl_spill_append(struct lcl_spill *sp, const struct lcl_rec *r)
{
    size_t mlen;
    const unsigned char *msg = lcl_rec_msg(r, &mlen);
    unsigned char h[REC_FIXED];
    put32le(h, (uint32_t)(LCL_LOG_FIXED + mlen));
    h[REC_HDR] = (unsigned char)lcl_rec_level(r);
    put64le(h + REC_HDR + 1, (uint64_t)lcl_rec_ts(r));
    uint32_t crc = lcl_crc32(0, h, 4);
    crc = lcl_crc32(crc, h + REC_HDR, LCL_LOG_FIXED);
    put32le(h + 4, lcl_crc32(crc, msg, mlen));

    struct iovec iov[2] = {{h, sizeof h}, {(void *)msg, mlen}};
    size_t want = sizeof h + mlen;
    ssize_t w = pwritev(sp->fd, iov, 2, (off_t)sp->end_off);
    if (w == (ssize_t)want) {
        sp->end_off += want;
        sp->count++;
        return 0;
    }
    /* Retry the rest once (a short write), else cut what was written. */
    int rc = w < 0 ? -errno : 0;
    if (w >= 0) {
        unsigned char *all = malloc(want);
        if (all) {
            memcpy(all, h, sizeof h);
            memcpy(all + sizeof h, msg, mlen);
            rc = write_all_at(sp->fd, all + w, want - (size_t)w, (off_t)(sp->end_off + (size_t)w));
            free(all);
        } else {
            rc = -ENOMEM;
        }
        if (rc == 0) {
            sp->end_off += want;
            sp->count++;
            return 0;
        }
    }
    if (ftruncate(sp->fd, (off_t)sp->end_off) < 0) {
        /* The next append overwrites the partial record anyway (pwrite at end_off). */
    }
    return rc ? rc : -EIO;
}

long lcl_spill_take(struct lcl_spill *sp, size_t max, struct lcl_list *out, uint64_t *ticket)
{
    if (!sp->count || !max)
        return 0;
    size_t want = sp->end_off - sp->read_off < CHUNK ? sp->end_off - sp->read_off : CHUNK;
    unsigned char *buf = malloc(want);
    if (!buf)
        return -ENOMEM;
    ssize_t r = pread(sp->fd, buf, want, (off_t)sp->read_off);
    if (r < 0) {
        int e = errno;
        free(buf);
        return -e;
    }
    size_t pos = 0, n = 0;
    long len = 0;
    while (n < max && (len = record_at(buf + pos, (size_t)r - pos)) > 0) {
        const unsigned char *p = buf + pos + REC_HDR;
        uint32_t plen = get32le(buf + pos);
        struct lcl_rec *rec =
            lcl_rec_new(p[0], (int64_t)get64le(p + 1), p + LCL_LOG_FIXED, plen - LCL_LOG_FIXED);
        if (!rec) {
            len = -ENOMEM;
            break;
        }
        rec->ticket = (*ticket)++;
        lcl_list_push(out, rec);
        pos += (size_t)len;
        n++;
    }
    free(buf);
    if (n == 0) {
        if (len == -ENOMEM)
            return -ENOMEM;
        /* Only a damaged record (the file was changed under us) or a short read stops the
         * first record: give up on the rest rather than loop on it. */
        sp->count = 0;
    }
    sp->read_off += pos;
    sp->count -= n;
    if (sp->count == 0) {
        /* Everything is back in memory: start the file again. */
        if (ftruncate(sp->fd, SPILL_HDR) == 0)
            sp->end_off = SPILL_HDR;
        sp->read_off = sp->end_off;
    }
    int rc = write_header(sp->fd, sp->read_off);
    return n == 0 ? (rc < 0 ? rc : -EIO) : (long)n;
}

/* Write path.tmp: the header, recs, then the rest of the old file; then rename it over path. */
static int rewrite(struct lcl_spill *sp, struct lcl_rec **recs, size_t n)
{
    size_t plen = strlen(sp->path);
    char *tmp = malloc(plen + 5);
    unsigned char *buf = malloc(CHUNK);
    int fd = -1, rc = -ENOMEM;
    if (!tmp || !buf)
        goto out;
    memcpy(tmp, sp->path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    struct lcl_spill out = {.fd = fd, .end_off = SPILL_HDR};
    if ((rc = write_header(fd, SPILL_HDR)) < 0)
        goto out;
    for (size_t i = 0; i < n; i++)
        if ((rc = lcl_spill_append(&out, recs[i])) < 0)
            goto out;
    for (uint64_t off = sp->read_off; off < sp->end_off;) {
        size_t want = sp->end_off - off < CHUNK ? sp->end_off - off : CHUNK;
        ssize_t r = pread(sp->fd, buf, want, (off_t)off);
        if (r <= 0) {
            rc = r < 0 ? -errno : -EIO;
            goto out;
        }
        if ((rc = write_all_at(fd, buf, (size_t)r, (off_t)out.end_off)) < 0)
            goto out;
        out.end_off += (uint64_t)r;
        off += (uint64_t)r;
    }
    if (fsync(fd) < 0 || rename(tmp, sp->path) < 0) {
        rc = -errno;
        goto out;
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (rc < 0 && tmp)
        unlink(tmp);
    free(tmp);
    free(buf);
    return rc;
}

int lcl_spill_close(struct lcl_spill *sp, struct lcl_rec **recs, size_t n)
{
    if (sp->fd < 0)
        return 0;
    int rc = 0;
    if (n > 0)
        rc = rewrite(sp, recs, n);
    else if (fsync(sp->fd) < 0)
        rc = -errno;
    close(sp->fd);
    sp->fd = -1;
    free(sp->path);
    sp->path = NULL;
    return rc;
}
