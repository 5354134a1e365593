/*  =========================================================================
    pb_cpe_date - calendar dates of EVENTS.md ("Time") as day numbers

    The conversions are Howard Hinnant's days_from_civil/civil_from_days
    ("chrono-Compatible Low-Level Date Algorithms"): exact, branch-light,
    no table, no libc time functions (timegm and friends read the
    environment and are not defined for every year we accept).
    =========================================================================
*/
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "pb_error.h"
#include "pb_cpe_date.h"

static bool
s_is_leap (int64_t year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static unsigned
s_month_days (int64_t year, unsigned month)
{
    static const unsigned days [12] = {
        31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
    };
    return month == 2 && s_is_leap (year)? 29: days [month - 1];
}

//  --------------------------------------------------------------------------

int64_t
pb_cpe_date_from_civil (int64_t year, unsigned month, unsigned day)
{
    year -= month <= 2;
    int64_t era = (year >= 0? year: year - 399) / 400;
    int64_t yoe = year - era * 400;                         //  [0, 399]
    int64_t doy = (153 * (month > 2? month - 3: month + 9) + 2) / 5 + day - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;    //  [0, 146096]
    return era * 146097 + doe - 719468;
}

void
pb_cpe_date_to_civil (int64_t days, int64_t *year_p, unsigned *month_p,
                      unsigned *day_p)
{
    assert (year_p && month_p && day_p);
    days += 719468;
    int64_t era = (days >= 0? days: days - 146096) / 146097;
    int64_t doe = days - era * 146097;                      //  [0, 146096]
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);  //  [0, 365]
    int64_t mp = (5 * doy + 2) / 153;                       //  [0, 11]
    *day_p = (unsigned) (doy - (153 * mp + 2) / 5 + 1);
    *month_p = (unsigned) (mp < 10? mp + 3: mp - 9);
    *year_p = yoe + era * 400 + (*month_p <= 2);
}

int
pb_cpe_date_parse (const char *text, size_t len, int64_t *days_p)
{
    assert (days_p);
    if (!text || len != 10 || text [4] != '-' || text [7] != '-')
        return PB_EINVAL;
    unsigned value [3] = { 0, 0, 0 };
    static const int start [3] = { 0, 5, 8 };
    static const int width [3] = { 4, 2, 2 };
    for (int field = 0; field < 3; field++)
        for (int i = 0; i < width [field]; i++) {
            char c = text [start [field] + i];
            if (c < '0' || c > '9')
                return PB_EINVAL;
            value [field] = value [field] * 10 + (unsigned) (c - '0');
        }
    if (value [0] < 1 || value [1] < 1 || value [1] > 12 || value [2] < 1
    ||  value [2] > s_month_days (value [0], value [1]))
        return PB_EINVAL;
    *days_p = pb_cpe_date_from_civil (value [0], value [1], value [2]);
    return 0;
}

int
pb_cpe_date_format (int64_t days, char *buf, size_t size)
{
    assert (buf && size >= PB_CPE_DATE_SIZE);
    int64_t year;
    unsigned month, day;
    buf [0] = 0;
    //  Keep the day number far from int64 overflow in to_civil's sums
    if (days < -1000000000 || days > 1000000000)
        return PB_EINVAL;
    pb_cpe_date_to_civil (days, &year, &month, &day);
    if (year < 1 || year > 9999)
        return PB_EINVAL;
    snprintf (buf, size, "%04d-%02u-%02u", (int) year, month, day);
    return 0;
}

int64_t
pb_cpe_date_years_after (int64_t days, int years)
{
    int64_t year;
    unsigned month, day;
    pb_cpe_date_to_civil (days, &year, &month, &day);
    year += years;
    if (day > s_month_days (year, month))
        day = s_month_days (year, month);   //  29 February -> 28 February
    return pb_cpe_date_from_civil (year, month, day);
}

int64_t
pb_cpe_date_ms (int64_t days)
{
    return days * PB_CPE_DATE_DAY_MS;
}

//  --------------------------------------------------------------------------
//  Selftest

static int64_t
s_parse (const char *text)
{
    int64_t days = INT64_MIN;
    int rc = pb_cpe_date_parse (text, strlen (text), &days);
    assert (rc == 0);
    return days;
}

static void
s_expect_two_years (const char *from, const char *expected)
{
    char buf [PB_CPE_DATE_SIZE];
    int rc = pb_cpe_date_format (pb_cpe_date_years_after (s_parse (from), 2),
                                 buf, sizeof buf);
    assert (rc == 0);
    assert (strcmp (buf, expected) == 0);
}

void
pb_cpe_date_test (bool verbose)
{
    printf (" * pb_cpe_date: ");

    //  Fixed points of the epoch and of log time
    assert (s_parse ("1970-01-01") == 0);
    assert (s_parse ("1969-12-31") == -1);
    assert (s_parse ("2000-03-01") == 11017);
    assert (pb_cpe_date_ms (s_parse ("2024-01-01")) == INT64_C (1704067200000));
    assert (pb_cpe_date_ms (s_parse ("2026-11-24")) == INT64_C (1795478400000));

    //  Every day of 0001..9999 round-trips through the wire form, and
    //  consecutive dates are consecutive day numbers
    int64_t first = s_parse ("0001-01-01");
    int64_t last = s_parse ("9999-12-31");
    assert (last - first + 1 == 3652059);   //  days of 9999 Gregorian years
    char buf [PB_CPE_DATE_SIZE];
    for (int64_t days = first; days <= last; days++) {
        int rc = pb_cpe_date_format (days, buf, sizeof buf);
        assert (rc == 0);
        int64_t back = INT64_MIN;
        rc = pb_cpe_date_parse (buf, 10, &back);
        assert (rc == 0 && back == days);
    }
    int rc = pb_cpe_date_format (first - 1, buf, sizeof buf);
    assert (rc == PB_EINVAL && buf [0] == 0);
    rc = pb_cpe_date_format (last + 1, buf, sizeof buf);
    assert (rc == PB_EINVAL);
    rc = pb_cpe_date_format (INT64_MAX / 2, buf, sizeof buf);
    assert (rc == PB_EINVAL);

    //  What the wire refuses, so must we
    const char *bad [] = {
        "2023-02-29", "2100-02-29", "2024-13-01", "2024-00-10", "2024-04-31",
        "0000-01-01", "2024-1-01", "2024/01/01", "2024-01-0a", "+024-01-01",
        "2024-01-01 ", " 024-01-01", ""
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        int64_t days = 42;
        rc = pb_cpe_date_parse (bad [i], strlen (bad [i]), &days);
        assert (rc == PB_EINVAL && days == 42);
    }
    int64_t days = 42;
    rc = pb_cpe_date_parse ("2024-01-01", 9, &days);    //  'len' is the truth
    assert (rc == PB_EINVAL);
    rc = pb_cpe_date_parse (NULL, 10, &days);
    assert (rc == PB_EINVAL && days == 42);
    assert (s_parse ("2000-02-29") + 1 == s_parse ("2000-03-01"));
    assert (s_parse ("1900-02-28") + 1 == s_parse ("1900-03-01"));

    //  Two years after (EVENTS.md, "Time")
    s_expect_two_years ("2024-01-01", "2026-01-01");
    s_expect_two_years ("2024-02-29", "2026-02-28");
    s_expect_two_years ("2022-02-28", "2024-02-28");
    s_expect_two_years ("2023-03-01", "2025-03-01");
    s_expect_two_years ("2098-02-28", "2100-02-28");
    s_expect_two_years ("1998-12-31", "2000-12-31");
    s_expect_two_years ("0001-01-01", "0003-01-01");
    s_expect_two_years ("9997-12-31", "9999-12-31");
    rc = pb_cpe_date_format (pb_cpe_date_years_after (s_parse ("9998-01-01"), 2),
                             buf, sizeof buf);
    assert (rc == PB_EINVAL);           //  Year 10000: the caller refuses it
    if (verbose)
        printf ("(%" PRId64 " days checked) ", last - first + 1);
    printf ("OK\n");
}
