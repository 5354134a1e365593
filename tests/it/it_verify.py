#!/usr/bin/python3
"""it_verify - the log's hash chain and pbctl verify, against a real
pb-journal and its LMDB files:

  intact      pbctl verify on a live journal (read-only beside it) and on
              the stopped one: 'intact', head = the log's head, exit 0
  flip        one byte flipped in a stored event by a raw LMDB write
              (mdb_load of that one record into the journal's own
              environment): verify names that seq, exit 1; the same for
              a byte of the stored hash, and at several places
  deleted     a record taken out (the log reloaded without it with
              mdb_dump/mdb_load): verify names it as missing
  cut         the last record taken out: named missing from the chain's
              anchor, and the journal refuses to start on that log
  rule        the chain's anchor is [rule 2][head][hash]; with rule 1's
              anchor (no rule byte) verify exits 3 saying so, and the
              journal refuses to start on that log
  files       the data directory is 0700 and its files 0600

Run: /usr/bin/python3 tests/it/it_verify.py --bin-dir BUILD
"""

import json
import os
import random
import shutil
import subprocess
import tempfile

import pbtest


def find_pbctl(bin_dir):
    path = os.path.join(bin_dir, "services", "ctl", "pbctl")
    if not os.access(path, os.X_OK):
        raise SystemExit("pbctl not found under %s" % bin_dir)
    return path


def verify(pbctl, log_dir):
    """pbctl verify --json: (exit code, report)"""
    proc = subprocess.run([pbctl, "verify", "--json", "--dir", log_dir],
                          capture_output=True, timeout=60)
    out = proc.stdout.decode().strip()
    assert "AddressSanitizer" not in proc.stderr.decode(), proc.stderr.decode()
    return proc.returncode, json.loads(out) if out else {}


def dump(log_dir):
    """mdb_dump -a: {db: (header lines, [(key hex, value hex)])}"""
    text = subprocess.run(["mdb_dump", "-a", log_dir], check=True,
                          capture_output=True).stdout.decode()
    dbs, name, header, pairs, in_data = {}, None, [], [], False
    for line in text.splitlines():
        if line.startswith("database="):
            name = line.split("=", 1)[1]
        if line == "HEADER=END":
            header.append(line)
            in_data = True
            continue
        if line == "DATA=END":
            dbs[name] = (header, pairs)
            header, pairs, in_data = [], [], False
            continue
        if in_data:
            pairs.append(line[1:])
        else:
            header.append(line)
    for db, (header, flat) in dbs.items():
        dbs[db] = (header, list(zip(flat[0::2], flat[1::2])))
    return dbs


def load(dbs, log_dir, only=None):
    """mdb_load the dumps (or only the db 'only') into 'log_dir'"""
    lines = []
    for db, (header, pairs) in dbs.items():
        if only and db != only:
            continue
        lines += [h for h in header if not h.startswith("db_pagesize")]
        for key, value in pairs:
            lines += [" " + key, " " + value]
        lines.append("DATA=END")
    subprocess.run(["mdb_load", log_dir], input=("\n".join(lines) + "\n").encode(),
                   check=True, capture_output=True)


def seq_key(seq):
    return "%016x" % seq


def flip(value_hex, offset):
    raw = bytearray(bytes.fromhex(value_hex))
    raw[offset] ^= 0x01
    return raw.hex()


def main():
    args = pbtest.parse_args()
    pbctl = find_pbctl(args.bin_dir)
    res = pbtest.Results("it_verify")
    rng = random.Random(5)
    with pbtest.Journal(args.journal, log_name="it-verify") as j:
        log_dir = os.path.join(j.data_dir, "log")
        j.start()
        count = 3000
        with pbtest.Producer(j) as p:
            replies = p.publish_all([pbtest.sized_feedback("v-%d" % i, "it-verify",
                                                           size=rng.randrange(80, 600))
                                     for i in range(count)])
        assert all(kind == "ACK" for kind, _ in replies), "not every event ACKed"
        with pbtest.Replayer(j) as r:
            r.tick(1735689600000)
        head = count + 1

        def intact_live():
            rc, report = verify(pbctl, log_dir)
            assert rc == 0 and report["status"] == "intact", (rc, report)
            assert report["head"] == head and report["checked"] == head, report

        def intact_stopped():
            assert j.term() == 0
            rc, report = verify(pbctl, log_dir)
            assert rc == 0 and report["status"] == "intact", (rc, report)
            assert report["head"] == head, report

        res.run("intact: verify beside a live journal", intact_live)
        res.run("intact: verify on the stopped journal's log", intact_stopped)
        original = dump(log_dir)
        records = dict(original["log"][1])
        assert len(records) == head

        def flip_one(seq, where):
            value = records[seq_key(seq)]
            type_len = int(value[0:2], 16)
            size = len(value) // 2
            if where == "envelope":
                offset = rng.randrange(1 + type_len, size - 32)
            elif where == "type":
                offset = 1
            else:
                offset = rng.randrange(size - 32, size)
            header = original["log"][0]
            changed = {"log": (header, [(seq_key(seq), flip(value, offset))])}
            load(changed, log_dir, only="log")          # in place: mdb_put
            rc, report = verify(pbctl, log_dir)
            #  Put it back: the next check starts from an intact log
            load({"log": (header, [(seq_key(seq), value)])}, log_dir, only="log")
            assert rc == 1, (rc, report)
            assert report == {"status": "altered", "seq": seq,
                              "reason": report["reason"]}, report
            rc, report = verify(pbctl, log_dir)
            assert rc == 0 and report["status"] == "intact", report

        for seq in (1, 2, 1500, rng.randrange(3, head), head):
            res.run("flip: a byte of event %d's envelope is named" % seq,
                    flip_one, seq, "envelope")
        res.run("flip: a byte of a type is named", flip_one, 777, "type")
        res.run("flip: a byte of a stored hash is named", flip_one, 2222, "hash")

        def without(seqs):
            target = os.path.join(tempfile.mkdtemp(prefix="pb-it-verify-"), "log")
            os.mkdir(target, 0o700)
            dbs = dict(original)
            header, pairs = dbs["log"]
            dbs["log"] = (header, [(k, v) for k, v in pairs
                                   if int(k, 16) not in seqs])
            load(dbs, target)
            return target

        def refused(target, log_name, said):
            """A journal on the log in 'target' exits non-zero, saying 'said'"""
            with pbtest.Journal(args.journal, data_dir=os.path.dirname(target),
                                log_name=log_name) as k:
                k.start(wait=False)
                rc = k.wait_exit(10)
                assert rc not in (0, None), "journal started on that log: %r" % rc
                assert said in k.log_tail(), k.log_tail()
                #  Said in the journal's words, not as LMDB's corruption
                assert "wrong type" not in k.log_tail(), k.log_tail()

        def deleted():
            target = without({1234})
            try:
                rc, report = verify(pbctl, target)
                assert rc == 1, (rc, report)
                assert report["status"] == "missing", report
                assert report["seq"] == 1234 and report["last"] == 1234, report
            finally:
                shutil.rmtree(os.path.dirname(target), ignore_errors=True)

        def deleted_run():
            target = without({10, 11, 12})
            try:
                rc, report = verify(pbctl, target)
                assert rc == 1 and report["status"] == "missing", report
                assert (report["seq"], report["last"]) == (10, 12), report
            finally:
                shutil.rmtree(os.path.dirname(target), ignore_errors=True)

        def cut():
            target = without({head - 1, head})
            try:
                rc, report = verify(pbctl, target)
                assert rc == 1 and report["status"] == "missing", report
                assert (report["seq"], report["last"]) == (head - 1, head), report
                #  The journal will not append to a chain whose end is gone
                refused(target, "it-verify-cut", "hash chain anchor")
            finally:
                shutil.rmtree(os.path.dirname(target), ignore_errors=True)

        res.run("deleted: a record taken out is named missing", deleted)
        res.run("deleted: three records taken out are named as a run", deleted_run)
        res.run("cut: the last records taken out are named from the anchor; "
                "the journal refuses that log", cut)

        def other_rule():
            #  The anchor this journal writes: [rule 2][head][h(head)]
            header, pairs = original["meta"]
            key = b"chain".hex()
            anchor = dict(pairs)[key]
            assert len(anchor) == 2 * 41 and anchor[:2] == "02", anchor
            assert int(anchor[2:18], 16) == head, anchor
            #  The same log with rule 1's anchor (no rule byte)
            target = os.path.join(tempfile.mkdtemp(prefix="pb-it-verify-"), "log")
            os.mkdir(target, 0o700)
            dbs = dict(original)
            dbs["meta"] = (header, [(k, v[2:] if k == key else v) for k, v in pairs])
            load(dbs, target)
            try:
                rc, report = verify(pbctl, target)
                assert rc == 3 and report["status"] == "unreadable", (rc, report)
                assert "rule 1" in report["reason"], report
                refused(target, "it-verify-rule", "follows rule 1")
            finally:
                shutil.rmtree(os.path.dirname(target), ignore_errors=True)

        res.run("rule: the anchor is of rule 2; a log of rule 1 is not verified "
                "(exit 3, saying so) and the journal refuses it", other_rule)

        def files():
            mode = os.stat(log_dir).st_mode & 0o777
            assert mode == 0o700, "data dir mode %o" % mode
            for name in os.listdir(log_dir):
                mode = os.stat(os.path.join(log_dir, name)).st_mode & 0o777
                assert mode == 0o600, "%s mode %o" % (name, mode)

        res.run("files: data dir 0700, LMDB files 0600", files)
    res.finish()


if __name__ == "__main__":
    main()
