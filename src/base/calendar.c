/* calendar.c - see calendar.h. */
#include "base/calendar.h"

bool lc_is_leap(int64_t y)
{
    return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

int lc_days_in_month(int64_t y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && lc_is_leap(y) ? 29 : dim[m - 1];
}

int64_t lc_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int64_t lc_year_of_days(int64_t z)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    return yoe + era * 400 + (mp >= 10); /* Months from March: 10 and 11 are Jan and Feb. */
}

int64_t lc_civil_ms(int64_t y, int mo, int d, int h, int mi, int s, int ms)
{
    if (mo < 1 || mo > 12 || d < 1 || d > lc_days_in_month(y, mo) || h > 23 || mi > 59 || s > 60)
        return INT64_MIN;
    if (s == 60) {
        s = 59;
        ms = 999;
    }
    return lc_days_from_civil(y, mo, d) * LC_MS_PER_DAY + ((h * 60 + mi) * 60 + s) * 1000LL + ms;
}
