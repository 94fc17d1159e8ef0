/* test_cisearch.c - ci_memmem against a naive reference.
 *
 * Random haystacks over a small alphabet chosen to provoke the vector filter's false
 * positives (bytes that differ only in bit 0x20 but are not letters, such as '@'/'`', '['/'{',
 * control bytes/digits, and Latin-1 bytes 0xC0/0xE0), every start alignment, needles at the
 * very end of the haystack, and haystacks that end against an unreadable page so any read past
 * the end faults. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "query/qry.h"

static const char *naive(const char *hay, size_t hl, const char *nd, size_t nl)
{
    if (nl == 0)
        return hay;
    for (size_t i = 0; i + nl <= hl; i++) {
        size_t k = 0;
        for (; k < nl; k++) {
            unsigned char a = (unsigned char)hay[i + k], b = (unsigned char)nd[k];
            if (a >= 'A' && a <= 'Z')
                a += 32;
            if (b >= 'A' && b <= 'Z')
                b += 32;
            if (a != b)
                break;
        }
        if (k == nl)
            return hay + i;
    }
    return NULL;
}

static uint64_t seed = 88172645463325252ull;

static uint32_t rnd(uint32_t n)
{
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return (uint32_t)(seed % n);
}

static const char alphabet[] = "aAbB@`[{0\x10\xc0\xe0 zZ";

static void fill(char *s, size_t n, size_t alpha)
{
    for (size_t i = 0; i < n; i++)
        s[i] = alphabet[rnd((uint32_t)alpha)];
}

static char flip_case(char c)
{
    return ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ? (char)(c ^ 0x20) : c;
}

/* A buffer of len bytes that ends exactly at a PROT_NONE page. */
struct guarded {
    char *map;
    size_t map_len;
    char *buf;
};

static struct guarded guard_alloc(size_t len)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t data_pages = (len + pg - 1) / pg + 1;
    struct guarded g = {.map_len = (data_pages + 1) * pg};
    g.map = mmap(NULL, g.map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g.map == MAP_FAILED) {
        g.map = NULL;
        return g;
    }
    mprotect(g.map + data_pages * pg, pg, PROT_NONE);
    g.buf = g.map + data_pages * pg - len;
    return g;
}

TEST(empty_and_short)
{
    const char *hay = "Hello";
    CHECK(ci_memmem(hay, 5, "", 0) == hay);
    CHECK(ci_memmem(hay, 0, "", 0) == hay);
    CHECK(ci_memmem(NULL, 0, "", 0) == NULL);
    CHECK(ci_memmem(hay, 5, "h", 1) == hay);
    CHECK(ci_memmem(hay, 5, "O", 1) == hay + 4);
    CHECK(ci_memmem(hay, 5, "hello!", 6) == NULL);
    CHECK(ci_memmem(hay, 0, "h", 1) == NULL);
    CHECK(ci_memmem(NULL, 0, "h", 1) == NULL);
    CHECK(ci_memmem(hay, 5, "HELLO", 5) == hay);
    CHECK(ci_memmem(hay, 4, "HELLO", 5) == NULL);
}

TEST(non_letters_are_exact)
{
    /* Bytes that the 0x20 fold merges but that are not case pairs. */
    CHECK(ci_memmem("a`b", 3, "a@b", 3) == NULL);
    CHECK(ci_memmem("x[y", 3, "x{y", 3) == NULL);
    CHECK(ci_memmem("\x10", 1, "0", 1) == NULL);
    CHECK(ci_memmem("\xc0", 1, "\xe0", 1) == NULL);
    CHECK(ci_memmem("user@Host", 9, "USER@host", 9) != NULL);
    const char *long_hay = "................................................................"
                           "..........a`b.............................x[y....................";
    CHECK(ci_memmem(long_hay, strlen(long_hay), "a@b", 3) == NULL);
    CHECK(ci_memmem(long_hay, strlen(long_hay), "A`B", 3) == long_hay + 74);
    CHECK(ci_memmem(long_hay, strlen(long_hay), "x{y", 3) == NULL);
    CHECK(ci_memmem(long_hay, strlen(long_hay), "X[Y", 3) == long_hay + 106);
}

TEST(random_against_naive)
{
    char hay[300], nd[40];
    for (int iter = 0; iter < 200000; iter++) {
        size_t alpha = 2 + rnd(sizeof(alphabet) - 2);
        size_t hl = rnd(iter % 10 == 0 ? 300 : 100), nl = rnd(iter % 7 == 0 ? 40 : 8);
        fill(hay, hl, alpha);
        fill(nd, nl, alpha);
        if (hl >= nl && nl > 0 && rnd(2)) {
            /* Plant the needle with random case flips of its letters. */
            size_t at = rnd((uint32_t)(hl - nl + 1));
            for (size_t k = 0; k < nl; k++) {
                char c = nd[k];
                if (((c | 0x20) >= 'a' && (c | 0x20) <= 'z') && rnd(2))
                    c ^= 0x20;
                hay[at + k] = c;
            }
        }
        const char *want = naive(hay, hl, nd, nl), *got = ci_memmem(hay, hl, nd, nl);
        if (want != got) {
            fprintf(stderr, "  mismatch: hl=%zu nl=%zu want=%td got=%td\n", hl, nl,
                    want ? want - hay : -1, got ? got - hay : -1);
            CHECK(want == got);
            return;
        }
    }
}

TEST(every_alignment_and_end)
{
    /* Each needle placed at every position (and only there) of a hay that ends at a guard page,
     * and each hay start offset, so all vector/tail paths see it. */
    static const char *needles[] = {"k",
                                    "Zq",
                                    "xYz",
                                    "needle",
                                    "LongerNeedle@1234567890",
                                    "abcdefghijklmnopqrstuvwxyz0123456789"};
    struct guarded g = guard_alloc(260);
    CHECK(g.map != NULL);
    if (!g.map)
        return;
    for (size_t ni = 0; ni < sizeof(needles) / sizeof(needles[0]); ni++) {
        const char *nd = needles[ni];
        size_t nl = strlen(nd);
        for (size_t hl = nl; hl <= 260; hl += (hl < 80 ? 1 : 7)) {
            char *hay = g.buf + 260 - hl; /* Always ends at the guard page. */
            for (size_t at = 0; at + nl <= hl; at++) {
                memset(hay, '.', hl);
                for (size_t k = 0; k < nl; k++)
                    hay[at + k] = (k & 1) ? nd[k] : flip_case(nd[k]);
                const char *got = ci_memmem(hay, hl, nd, nl);
                if (got != hay + at) {
                    fprintf(stderr, "  needle %s hl=%zu at=%zu got=%td\n", nd, hl, at,
                            got ? got - hay : -1);
                    CHECK(got == hay + at);
                    munmap(g.map, g.map_len);
                    return;
                }
                /* Without the last byte the needle must not be found. */
                hay[at + nl - 1] = '.';
                CHECK(naive(hay, hl, nd, nl) == ci_memmem(hay, hl, nd, nl));
            }
        }
    }
    munmap(g.map, g.map_len);
}

TEST(first_of_many)
{
    char hay[1000];
    memset(hay, '-', sizeof(hay));
    for (size_t at = 0; at < 990; at += 37)
        memcpy(hay + at, "ErRoR", 5);
    CHECK(ci_memmem(hay, sizeof(hay), "error", 5) == hay);
    CHECK(ci_memmem(hay + 1, sizeof(hay) - 1, "error", 5) == hay + 37);
    CHECK(ci_memmem(hay, sizeof(hay), "error-", 6) == hay);
    CHECK(ci_memmem(hay, sizeof(hay), "-error", 6) == hay + 36);
}

TEST(large_hay_needle_at_end)
{
    size_t n = 3 << 20;
    struct guarded g = guard_alloc(n);
    CHECK(g.map != NULL);
    if (!g.map)
        return;
    for (size_t i = 0; i < n; i++)
        g.buf[i] = "the quick brown fox jumps over the lazy dog 0123456789\n"[i % 55];
    CHECK(ci_memmem(g.buf, n, "segfault", 8) == NULL);
    memcpy(g.buf + n - 8, "SEGFAULT", 8);
    CHECK(ci_memmem(g.buf, n, "segfault", 8) == g.buf + n - 8);
    CHECK(ci_memmem(g.buf, n, "Lazy Dog", 8) == g.buf + 35);
    munmap(g.map, g.map_len);
}

int main(void)
{
    RUN(empty_and_short);
    RUN(non_letters_are_exact);
    RUN(random_against_naive);
    RUN(every_alignment_and_end);
    RUN(first_of_many);
    RUN(large_hay_needle_at_end);
    return check_summary("test_cisearch");
}
