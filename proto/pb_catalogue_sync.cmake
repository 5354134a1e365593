#  pb_catalogue_sync.cmake - keeps proto/README.md's catalogue table in step
#  with pb_catalogue.def (through pb_catalogue_doc)
#
#  cmake -DDOC=<pb_catalogue_doc> -DREADME=<proto/README.md> [-DUPDATE=ON]
#        -P pb_catalogue_sync.cmake
#  Without UPDATE: fails if the text between the markers differs from the
#  generator's output. With UPDATE=ON: rewrites that text.
set (begin_marker "<!-- catalogue:begin -->")
set (end_marker "<!-- catalogue:end -->")
execute_process (COMMAND ${DOC} OUTPUT_VARIABLE table RESULT_VARIABLE rc)
if (NOT rc EQUAL 0)
    message (FATAL_ERROR "pb_catalogue_sync: ${DOC} failed (${rc})")
endif ()
file (READ ${README} readme)
string (FIND "${readme}" "${begin_marker}\n" begin)
string (FIND "${readme}" "${end_marker}" end)
if (begin EQUAL -1 OR end EQUAL -1 OR end LESS begin)
    message (FATAL_ERROR "pb_catalogue_sync: ${README} lacks the markers "
             "'${begin_marker}' and '${end_marker}' (each on its own line)")
endif ()
string (LENGTH "${begin_marker}\n" marker_len)
math (EXPR body_start "${begin} + ${marker_len}")
math (EXPR body_len "${end} - ${body_start}")
string (SUBSTRING "${readme}" ${body_start} ${body_len} current)
if (current STREQUAL table)
    return ()
endif ()
if (UPDATE)
    string (SUBSTRING "${readme}" 0 ${body_start} head)
    string (SUBSTRING "${readme}" ${end} -1 tail)
    file (WRITE ${README} "${head}${table}${tail}")
    message (STATUS "pb_catalogue_sync: ${README} updated")
else ()
    message (FATAL_ERROR "pb_catalogue_sync: the catalogue table in "
             "${README} differs from pb_catalogue.def; regenerate it with "
             "'cmake --build <build> --target pb_catalogue_readme'")
endif ()
