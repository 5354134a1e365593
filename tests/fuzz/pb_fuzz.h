/*  =========================================================================
    pb_fuzz - what the libFuzzer targets of tests/fuzz share

    Each target is one file that defines LLVMFuzzerTestOneInput (and, where
    it needs a fixture, LLVMFuzzerInitialize). With -DPB_FUZZ=ON and clang
    it links libFuzzer; in every other build it links pb_fuzz_replay.c, a
    main that feeds the files given on its command line (the committed
    corpus, crashes found included) to the same function once each, so the
    ctests fuzz_replay_* replay every corpus under gcc, ASan and release.

    A target never returns an error for bad input: it asserts the
    invariants it checks (asserts stay on in every build type), so a broken
    invariant is a crash that libFuzzer saves and minimizes.
    =========================================================================
*/
#ifndef PB_FUZZ_H_INCLUDED
#define PB_FUZZ_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

//  The two entry points libFuzzer calls (and pb_fuzz_replay.c)
int
    LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);
int
    LLVMFuzzerInitialize (int *argc, char ***argv);

//  Frames of one multipart message inside a fuzz input are separated by
//  the two bytes 0xC1 0xC1: 0xC1 is the one byte msgpack never uses, so the
//  separator never splits a valid msgpack body.
#define PB_FUZZ_SEPARATOR "\xc1\xc1"
#define PB_FUZZ_SEPARATOR_SIZE 2

#endif
