"""powercut - turn a kill -9 into a power cut, with pb_powercut.so's undo log

pb_powercut.so (LD_PRELOAD) records, before each write to a file under
$PB_POWERCUT_DIR, the bytes it overwrites, and marks each successful
fsync/fdatasync (see pb_powercut.c for the record format). After the
process is killed, cut() puts the files back as a disk that lost its
write cache might have them:

  mode "all"     every write since the file's last sync is undone, and the
                 file takes back the size it had then;
  mode "subset"  each 512-byte sector written since the last sync is
                 undone or kept at random (a disk that wrote some of its
                 cache out of order); sectors past the synced size that
                 are undone read as zeros, and the file is cut back to
                 its synced size only if all of them are undone.

lock.mdb is left alone: it is LMDB's shared-memory lock table, which LMDB
rebuilds when it opens an environment no live process holds.
"""

import os
import struct

SECTOR = 512


def env_for(watch_dir, log_path, shim):
    """The environment that runs a process under the shim."""
    return {"LD_PRELOAD": shim, "PB_POWERCUT_DIR": watch_dir,
            "PB_POWERCUT_LOG": log_path}


def parse(log_path):
    """The undo log as a list of records:
    ("W", path, offset, length, size_before, saved_bytes),
    ("S", path), ("T", path, size_before, new_size)."""
    try:
        with open(log_path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    records = []
    i = 0
    while i < len(data):
        kind = chr(data[i])
        if i + 5 > len(data):
            break                       # a torn last record: never applied
        (n,) = struct.unpack_from("<I", data, i + 1)
        path = data[i + 5:i + 5 + n].decode("utf-8", "surrogateescape")
        i += 5 + n
        if kind == "W":
            if i + 32 > len(data):
                break
            off, length, size, saved = struct.unpack_from("<4Q", data, i)
            i += 32
            if i + saved > len(data):
                break
            records.append(("W", path, off, length, size,
                            data[i:i + saved]))
            i += saved
        elif kind == "S":
            records.append(("S", path))
        elif kind == "T":
            if i + 16 > len(data):
                break
            before, after = struct.unpack_from("<2Q", data, i)
            i += 16
            records.append(("T", path, before, after))
        else:
            raise ValueError("undo log %s: bad record %r at %d"
                             % (log_path, kind, i))
    return records


def pending(records):
    """Per file, the records since its last sync, in order."""
    per_file = {}
    for rec in records:
        if rec[0] == "S":
            per_file.pop(rec[1], None)
        else:
            per_file.setdefault(rec[1], []).append(rec)
    return per_file


def cut(log_path, mode, rng):
    """Undo the unsynced writes of every file in the undo log, then empty
    the log. Returns (files, sectors undone, sectors kept)."""
    assert mode in ("all", "subset")
    undone = kept = 0
    files = 0
    for path, recs in pending(parse(log_path)).items():
        if os.path.basename(path) == "lock.mdb" or not os.path.exists(path):
            continue
        files += 1
        synced_size = recs[0][4] if recs[0][0] == "W" else recs[0][2]
        # First write wins: the bytes each sector had at the last sync,
        # as (content, known mask) per sector
        original = {}
        touched = set()

        def remember(pos, chunk):
            """Bytes 'chunk' were at 'pos' before a write (unless known)."""
            while chunk:
                sec, at = divmod(pos, SECTOR)
                n = min(len(chunk), SECTOR - at)
                content, mask = original.setdefault(
                    sec, (bytearray(SECTOR), bytearray(SECTOR)))
                if not any(mask[at:at + n]):
                    content[at:at + n] = chunk[:n]
                    mask[at:at + n] = b"\1" * n
                else:
                    for k in range(n):
                        if not mask[at + k]:
                            content[at + k] = chunk[k]
                            mask[at + k] = 1
                pos += n
                chunk = chunk[n:]

        for rec in recs:
            if rec[0] == "W":
                _, _, off, length, size_before, saved = rec
                if length == 0:
                    continue
                touched.update(range(off // SECTOR,
                                     (off + length - 1) // SECTOR + 1))
                remember(off, saved)
                # bytes past the file's end then had no content: zeros
                tail = max(off, size_before)
                if tail < off + length:
                    remember(tail, bytes(off + length - tail))
            else:                       # T: bytes cut off were saved by a W
                _, _, before, after = rec
                if before > after:
                    touched.update(range(after // SECTOR,
                                         (before - 1) // SECTOR + 1))
        undo = sorted(touched) if mode == "all" else \
            sorted(s for s in touched if rng.random() < 0.5)
        undone += len(undo)
        kept += len(touched) - len(undo)
        beyond = [s for s in touched if (s + 1) * SECTOR > synced_size]
        truncate = mode == "all" or all(s in set(undo) for s in beyond)
        with open(path, "r+b") as f:
            for sec in undo:
                if sec not in original:
                    continue
                content, mask = original[sec]
                base = sec * SECTOR
                for at in range(SECTOR):
                    if not mask[at]:
                        continue
                    # a run of known bytes, written at once
                    if at and mask[at - 1]:
                        continue
                    end_at = at
                    while end_at < SECTOR and mask[end_at]:
                        end_at += 1
                    lo, hi = base + at, base + end_at
                    if truncate:
                        hi = min(hi, synced_size)
                    if lo >= hi:
                        continue
                    chunk = bytes(content[lo - base:hi - base])
                    if not truncate and lo >= synced_size:
                        chunk = bytes(len(chunk))
                    f.seek(lo)
                    f.write(chunk)
            if truncate:
                f.truncate(synced_size)
            f.flush()
            os.fsync(f.fileno())
    open(log_path, "wb").close()
    return files, undone, kept
