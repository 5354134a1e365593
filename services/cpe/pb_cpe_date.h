/*  =========================================================================
    pb_cpe_date - calendar dates of EVENTS.md ("Time") as day numbers

    A date is "YYYY-MM-DD" (UTC, proleptic Gregorian, years 0001..9999) on
    the wire and a day number (days since 1970-01-01, negative before) in
    the rules, so that dates compare and subtract as integers and meet log
    time (ms since the epoch) at UTC midnight. Pure functions, no state:
    any thread may call them.
    =========================================================================
*/
#ifndef PB_CPE_DATE_H_INCLUDED
#define PB_CPE_DATE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  One day in ms
#define PB_CPE_DATE_DAY_MS INT64_C (86400000)

//  Size of a buffer for a formatted date, with its terminating nul
#define PB_CPE_DATE_SIZE 11

//  Parse exactly 'len' bytes of "YYYY-MM-DD" (a real calendar date, year
//  0001..9999) into *days_p. Returns 0, or PB_EINVAL (wrong shape, no such
//  day, year 0) with *days_p untouched.
int
    pb_cpe_date_parse (const char *text, size_t len, int64_t *days_p);

//  Write day number 'days' as "YYYY-MM-DD" into 'buf' (at least
//  PB_CPE_DATE_SIZE bytes). Returns 0, or PB_EINVAL if the year is outside
//  0001..9999 (buf is then "").
int
    pb_cpe_date_format (int64_t days, char *buf, size_t size);

//  Day number of year/month/day (month 1..12, day 1..31; not checked:
//  day 0 is the day before the 1st). Exact for any int year.
int64_t
    pb_cpe_date_from_civil (int64_t year, unsigned month, unsigned day);

//  Year, month, day of a day number
void
    pb_cpe_date_to_civil (int64_t days, int64_t *year_p, unsigned *month_p,
                          unsigned *day_p);

//  The same month and day 'years' later; 29 February becomes 28 February
//  when the target year is not a leap year (EVENTS.md, "Time").
int64_t
    pb_cpe_date_years_after (int64_t days, int years);

//  Log time (ms) of the UTC midnight that starts day 'days'
int64_t
    pb_cpe_date_ms (int64_t days);

//  Self test of this module
void
    pb_cpe_date_test (bool verbose);

#endif
