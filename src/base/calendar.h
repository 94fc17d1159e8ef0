/* calendar.h - proleptic Gregorian dates and UTC times as milliseconds since the epoch, for the
 * timestamp parsers (syslog's, and the one that reads a time from the start of a line). */
#ifndef LC_BASE_CALENDAR_H
#define LC_BASE_CALENDAR_H

#include <stdbool.h>
#include <stdint.h>

#define LC_MS_PER_DAY 86400000LL

bool lc_is_leap(int64_t y);
int lc_days_in_month(int64_t y, int m); /* m 1..12. */

/* Days since 1970-01-01 of a date (Howard Hinnant's days_from_civil). */
int64_t lc_days_from_civil(int64_t y, int m, int d);

/* The year of a day counted from 1970-01-01 (the inverse of lc_days_from_civil). */
int64_t lc_year_of_days(int64_t z);

/* Milliseconds since the epoch of a UTC date and time, or INT64_MIN when a field is out of
 * range (the year is the caller's to bound). A leap second (60) counts as 59.999, the last
 * moment of the minute it ends. */
int64_t lc_civil_ms(int64_t y, int mo, int d, int h, int mi, int s, int ms);

#endif
