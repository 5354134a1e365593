//  The one list of module selftests: read by pb_selftest.c (X-macro) and by
//  tests/CMakeLists.txt (one CTest entry each). Order: low level first.
PB_SELFTEST (pb_error)
PB_SELFTEST (pb_crash)
PB_SELFTEST (pb_sock)
PB_SELFTEST (pb_config)
PB_SELFTEST (pb_wire)
