/* line.h - what every text protocol needs: line framing, safe escaping, level detection.
 *
 * All functions are pure and borrow their input. */
#ifndef LC_LINE_H
#define LC_LINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Find the next line in p[0..n). On success returns the bytes to consume (line plus its '\n')
 * and sets *len to the line length without "\n" or "\r\n". Returns 0 when no '\n' is in
 * p[0..n) (need more). */
size_t line_next(const char *p, size_t n, size_t *len);

/* Copy in[0..n) to out, replacing bytes that are control characters (< 0x20, 0x7f) or not
 * part of valid UTF-8 with the four characters "\xHH". out must have room for 4 * n bytes.
 * Returns the bytes written. Output is safe for any line protocol (no CR/LF/NUL). */
size_t line_escape(const char *in, size_t n, char *out);

/* True if in[0..n) needs no escaping (printable ASCII and valid UTF-8 only). */
bool line_is_clean(const char *in, size_t n);

/* Detect a log level in the first 128 bytes of a message: the first whole word (letters
 * only, any case) that is a level name or alias (ERROR, WARN, WARNING, INFO, DEBUG, FATAL,
 * CRITICAL, TRACE, ...). Returns the level, or -1 when none is found. */
int line_detect_level(const char *p, size_t n);

#endif
