#!/usr/bin/python3
"""make_corpus - write the seed corpora and the msgpack dictionary of tests/fuzz

Run from anywhere with Debian's python3 (python3-msgpack):
    /usr/bin/python3 tests/fuzz/make_corpus.py
It reads THE catalogue list, proto/pb_catalogue.def, and builds for every
type a valid envelope from its schema (and a few near misses), so the seeds
follow the catalogue as it changes. Seeds are named seed-*; the files that
libFuzzer found and that became regression tests are named crash-* or
regress-* and are never touched here. The dictionary tests/fuzz/pb_msgpack.dict
holds msgpack's type bytes, the envelope keys, every type name, field name
and enumeration value of the catalogue.
"""

import os
import re
import sys

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEF = os.path.join(ROOT, "proto", "pb_catalogue.def")
SEP = b"\xc1\xc1"      # the frame separator of pb_fuzz.h


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def parse_catalogue():
    text = open(DEF).read()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    enums, schemas, actions, types = {}, {}, {}, []
    for m in re.finditer(r"PB_ENUM\s*\((\w+),([^)]*)\)", text):
        enums[m.group(1)] = re.findall(r'"([^"]*)"', m.group(2))
    for m in re.finditer(
            r"PB_FIELD\s*\((\w+),\s*(\w+),\s*(WHEN\s*\([^)]*\)|\w+),\s*(\w+),"
            r"\s*(-?[\w.]+),\s*(-?[\w.]+),\s*(\w+)\)", text):
        schema, field, presence, kind, lo, hi, enum = m.groups()
        schemas.setdefault(schema, []).append(
            (field, presence, kind, lo, hi, enum))
    for m in re.finditer(r'PB_ACTION\s*\("([^"]+)",\s*(\w+)\)', text):
        actions[m.group(1)] = m.group(2)
    for m in re.finditer(r'PB_TYPE\s*\("([^"]+)",\s*("?\w+"?),\s*(\w+)\)',
                         text):
        owner = m.group(2).strip('"')
        types.append((m.group(1), None if owner == "NULL" else owner,
                      m.group(3)))
    return enums, schemas, actions, types


def number(text):
    try:
        return int(text, 0)
    except ValueError:
        return float(text)


def value_of(kind, lo, hi, enum, enums, schemas, actions):
    cons = enums.get("considerations", [])
    if kind == "ID":
        return "X-1"
    if kind == "TEXT":
        return "text"
    if kind == "STR":
        return "s" * max(1, number(lo))
    if kind == "COUNTRY":
        return "ITA"
    if kind == "DATE":
        return "2025-01-01"
    if kind == "TIME":
        return 1735689600000
    if kind == "INT":
        return number(lo)
    if kind == "REAL":
        return float(number(lo))
    if kind == "BOOL":
        return True
    if kind == "ENUM":
        return enums[enum][0]
    if kind == "LIST_ENUM":
        return enums[enum][:max(1, number(lo))]
    if kind == "LIST_COUNTRY":
        return ["ITA", "JPN"][:max(1, number(lo))]
    if kind == "LIST_ID":
        return ["X-1"]
    if kind == "WEIGHTS":
        return {c: 10 for c in cons}
    if kind == "FACTORS":
        return {c: 0.5 for c in cons}
    if kind == "PROFILE":
        return {c: True for c in cons[:-1]}
    if kind == "ACTION":
        kind_name = next(iter(actions))
        data = {"kind": kind_name}
        data.update(data_of(actions[kind_name], enums, schemas, actions))
        return data
    return "x"


def data_of(schema, enums, schemas, actions, optional=True):
    data = {}
    for field, presence, kind, lo, hi, enum in schemas.get(schema, []):
        if presence.startswith("WHEN"):
            sib, val = re.match(r'WHEN\s*\((\w+),\s*"([^"]*)"\)',
                                presence).groups()
            if data.get(sib) != val:
                continue
        elif presence == "OPTIONAL" and not optional:
            continue
        data[field] = value_of(kind, lo, hi, enum, enums, schemas, actions)
    return data


def envelope(type_, owner, schema, cat, optional=True):
    enums, schemas, actions, _ = cat
    env = {"id": "e-1", "src": owner or "it", "type": type_,
           "data": data_of(schema, enums, schemas, actions, optional)}
    if type_.startswith("notify."):
        env["cause"] = 7
    return env


def write(target, name, data):
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def clear_seeds(target):
    folder = os.path.join(HERE, "corpus", target)
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            if name.startswith("seed-"):
                os.unlink(os.path.join(folder, name))


def main():
    cat = parse_catalogue()
    enums, schemas, actions, types = cat
    if len(types) < 10:
        sys.exit("make_corpus: only %d types parsed from %s" % (len(types),
                                                                DEF))
    for t in ("envelope", "wire", "log_record", "config", "ctl_json",
              "ingest"):
        clear_seeds(t)
    # envelope: [selector][bytes]; ingest: type SEP bytes; log_record:
    # [flags][type length][type][stored bytes]
    stored_records = []
    for index, (type_, owner, schema) in enumerate(types):
        full = envelope(type_, owner, schema, cat)
        bare = envelope(type_, owner, schema, cat, optional=False)
        write("envelope", "seed-%02d-%s" % (index, type_),
              bytes([index]) + pack(full))
        if bare != full:
            write("envelope", "seed-%02d-%s-required" % (index, type_),
                  bytes([index]) + pack(bare))
        stored = dict(full, seq=index + 1, ts=1735689600000 + index)
        write("envelope", "seed-%02d-%s-stored" % (index, type_),
              bytes([len(types)]) + pack(stored))
        if owner is None:
            write("ingest", "seed-%02d-%s" % (index, type_),
                  type_.encode() + SEP + pack(dict(full, id="i-%d" % index)))
        stored_records.append(bytes([len(type_)]) + type_.encode() +
                              pack(stored))
    for i, rec in enumerate(stored_records[:12]):
        write("log_record", "seed-%02d" % i, b"\x00" + rec)
    write("log_record", "seed-chain", b"\x00" + SEP.join(stored_records[:5]))
    write("log_record", "seed-short", b"\x00\x05ab")
    write("log_record", "seed-gap", b"\x02" + stored_records[0])
    # near misses for the envelope and ingest
    schema_of = dict((t, s) for t, _, s in types)
    feedback = envelope("activity.feedback", None,
                        schema_of["activity.feedback"], cat)
    misses = {
        "missing-id": {k: v for k, v in feedback.items() if k != "id"},
        "seq-from-producer": dict(feedback, seq=1),
        "bad-range": dict(feedback, data=dict(feedback["data"],
                                              relevance=9)),
        "extra-key": dict(feedback, colour="blue"),
        "not-a-map": ["id", "e-1"],
    }
    fb_index = [t for t, _, _ in types].index("activity.feedback")
    for name, obj in misses.items():
        write("envelope", "seed-miss-" + name, bytes([fb_index]) + pack(obj))
        write("ingest", "seed-miss-" + name,
              b"activity.feedback" + SEP + pack(obj))
    write("ingest", "seed-one-frame", pack(feedback))
    write("ingest", "seed-three-frames", b"activity.feedback" + SEP +
          pack(feedback) + SEP + b"x")
    write("ingest", "seed-sys-tick", b"sys.tick" + SEP +
          pack({"id": "t", "src": "it", "type": "sys.tick",
                "data": {"now": 1}}))
    write("ingest", "seed-deep", b"activity.feedback" + SEP +
          b"\x91" * 40 + b"\xc0")
    write("ingest", "seed-huge-count", b"activity.feedback" + SEP +
          b"\xdd\xff\xff\xff\xff")
    # wire: [selector][map]; < 128 is REPLAY
    replays = [{"from": 1}, {"from": 5, "to": 9},
               {"from": 1, "prefixes": ["nac.", "cpe."], "credit": 8},
               {"from": 1, "prefixes": [""]}, {"from": 0},
               {"from": 3, "to": 2}, {"from": 1, "bogus": 1}]
    for i, req in enumerate(replays):
        write("wire", "seed-replay-%d" % i, b"\x00" + pack(req))
    replies = [(128, {"n": 3}), (129, {"now": 1735689600000}),
               (130, {"id": "e-1", "seq": 4}),
               (131, {"id": "e-1", "code": "bad_data", "error": "data.x"}),
               (132, {"through": 5, "head": 9, "count": 2}),
               (133, {"seq": 4, "now": 17}),
               (134, {"head": 4, "now": 0, "clock": "manual"}),
               (135, {"code": "bad_request", "error": "REPLAY.from"}),
               (136, {"head": 4, "ts": 17})]
    for sel, obj in replies:
        write("wire", "seed-reply-%d" % sel, bytes([sel]) + pack(obj))
    # config: ZPL text
    write("config", "seed-full", b"""journal
    data_dir = "/tmp/x"
    ingest = "tcp://127.0.0.1:7701"
    clock = manual
    map_size = 64M
    map_max = 1G
    batch_max = 512
    tick_interval = 1000
    verbose = true
""")
    write("config", "seed-bad-value", b"journal\n    batch_max = 0\n")
    write("config", "seed-unit", b"256\njournal\n    max_msg_size = 2M\n")
    write("config", "seed-nested", b"journal\n    x\n        y = 1\n")
    write("config", "seed-comment", b"# comment\njournal\n    clock = auto  # c\n")
    # ctl_json: [mode][bytes]; even: JSON text, odd: msgpack
    write("ctl_json", "seed-event", b"\x00" + b'{"id":"e-1","src":"it",'
          b'"type":"activity.feedback","data":{"activity":"A","from":"ITA",'
          b'"relevance":3,"effectiveness":4.5,"ok":true,"n":null}}')
    write("ctl_json", "seed-numbers", b"\x00[0,-1,9223372036854775807,"
          b"-9223372036854775808,1.0,1e300,\"\\u00e9\"]")
    write("ctl_json", "seed-dup", b'\x00{"a":1,"a":2}')
    write("ctl_json", "seed-msgpack", b"\x01" + pack(dict(feedback, seq=1, ts=2)))
    write("ctl_json", "seed-msgpack-odd", b"\x01" +
          pack({1: b"\x00\xff", "u": 2 ** 64 - 1, "f": float("inf")}))
    write_dictionary(cat)


def write_dictionary(cat):
    enums, schemas, actions, types = cat
    words = set()
    for t, _, _ in types:
        words.add(t)
    for fields in schemas.values():
        for f in fields:
            words.add(f[0])
    for values in enums.values():
        words.update(values)
    words.update(actions)
    words.update(["id", "src", "type", "data", "time", "cause", "seq", "ts",
                  "from", "to", "prefixes", "credit", "n", "now", "kind",
                  "journal", "nac", "cpe", "activity", "ops",
                  "map_size", "batch_max", "data_dir", "clock", "manual",
                  "auto", "verbose"])
    lines = ['# msgpack type bytes and the catalogue\'s words '
             '(make_corpus.py)',
             'sep="\\xc1\\xc1"']
    for name, b in [("nil", 0xc0), ("false", 0xc2), ("true", 0xc3),
                    ("bin8", 0xc4), ("bin16", 0xc5), ("bin32", 0xc6),
                    ("ext8", 0xc7), ("f32", 0xca), ("f64", 0xcb),
                    ("u8", 0xcc), ("u16", 0xcd), ("u32", 0xce),
                    ("u64", 0xcf), ("i8", 0xd0), ("i64", 0xd3),
                    ("fixext1", 0xd4), ("str8", 0xd9), ("str16", 0xda),
                    ("str32", 0xdb), ("arr16", 0xdc), ("arr32", 0xdd),
                    ("map16", 0xde), ("map32", 0xdf), ("negfix", 0xff)]:
        lines.append('%s="\\x%02x"' % (name, b))
    lines.append('arr32max="\\xdd\\xff\\xff\\xff\\xff"')
    lines.append('map32max="\\xdf\\xff\\xff\\xff\\xff"')
    lines.append('str32max="\\xdb\\xff\\xff\\xff\\xff"')
    for i, w in enumerate(sorted(words)):
        raw = pack(w)
        esc = "".join("\\x%02x" % c if c < 0x20 or c > 0x7e or c in b'"\\'
                      else chr(c) for c in raw)
        lines.append('w%d="%s"' % (i, esc))
    with open(os.path.join(HERE, "pb_msgpack.dict"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
