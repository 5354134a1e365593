#!/usr/bin/python3
"""it_deploy - deploy/partnerbus.cfg and deploy/systemd/ hold together

  config      every service loads deploy/partnerbus.cfg (--check-config
              exits 0 and prints the file's values, not the defaults); the
              file has a section for every service; a typo in a section
              is refused, naming the key and the file
  live        pb-journal runs on the sample file (ports and data dir
              overridden on the command line) and its /health says ready
  units       systemd-analyze verify finds nothing to say about any unit
              (ExecStart pointed at the built binaries); every service unit
              runs its own binary on /etc/partnerbus/partnerbus.cfg, checks
              it first, logs to the journal and is hardened (systemd-analyze
              security --offline: exposure below 2.5, the figure printed).
              Skipped, and said so, where systemd-analyze is missing.

Run: /usr/bin/python3 tests/it/it_deploy.py --bin-dir BUILD
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pbtest  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEPLOY = os.path.abspath(os.path.join(HERE, "..", "..", "deploy"))
CFG = os.path.join(DEPLOY, "partnerbus.cfg")
SERVICES = ("journal", "nac", "cpe", "activity")
HARDENING = ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
             "ProtectHome=yes", "RestrictAddressFamilies=", "StateDirectory=partnerbus/",
             "User=partnerbus", "StandardOutput=journal", "CapabilityBoundingSet=")


def binary(bin_dir, name):
    path = os.path.abspath(os.path.join(bin_dir, "services", name, "pb-" + name))
    assert os.access(path, os.X_OK), path
    return path


def sections(path):
    """{section: {key: value}} of a ZPL file, as written (top level only)"""
    found, current = {}, None
    for line in open(path):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            current = found.setdefault(line.strip(), {})
        else:
            key, _, value = line.strip().partition("=")
            value = value.split("#")[0].strip().strip('"')
            current[key.strip()] = value
    return found


def check_config(bin_dir, tmp):
    written = sections(CFG)
    assert set(written) == set(SERVICES), sorted(written)
    for name in SERVICES:
        proc = subprocess.run([binary(bin_dir, name), "--config", CFG, "--check-config"],
                              capture_output=True, timeout=30)
        out = proc.stdout.decode()
        assert proc.returncode == 0, (name, proc.stderr.decode())
        effective = dict(line.split(" = ", 1) for line in out.splitlines())
        for key, value in written[name].items():
            got = effective.get("%s/%s" % (name, key))
            assert got is not None, (name, key)
            #  Sizes come back in bytes; everything else as written
            if not re.fullmatch(r"\d+[KMG]", value):
                assert got.strip('"') == value, (name, key, got, value)
        assert effective["%s/data_dir" % name] == '"/var/lib/partnerbus/%s"' % name
        #  A typo in the section is refused with its key and file
        bad = os.path.join(tmp, "typo-%s.cfg" % name)
        with open(CFG) as src, open(bad, "w") as dst:
            dst.write(src.read().replace("\n%s\n" % name, "\n%s\n    verbos = true\n" % name, 1))
        proc = subprocess.run([binary(bin_dir, name), "--config", bad, "--check-config"],
                              capture_output=True, timeout=30)
        err = proc.stderr.decode()
        assert proc.returncode != 0 and "%s/verbos" % name in err and bad in err, (name, err)


def check_live(bin_dir, tmp):
    ports = [pbtest.free_port() for _ in range(4)]
    args = [binary(bin_dir, "journal"), "--config", CFG,
            "--data-dir", os.path.join(tmp, "journal"),
            "--ingest", "tcp://127.0.0.1:%d" % ports[0],
            "--fanout", "tcp://127.0.0.1:%d" % ports[1],
            "--replay", "tcp://127.0.0.1:%d" % ports[2],
            "--metrics", "127.0.0.1:%d" % ports[3], "--map-size", "16M"]
    log = open(os.path.join(tmp, "journal.log"), "wb")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 20
        while True:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/health" % ports[3],
                                            timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, open(os.path.join(tmp, "journal.log")).read()[-2000:]
            assert time.time() < deadline, "not ready in 20 s"
            time.sleep(0.2)
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
        log.close()
    text = open(os.path.join(tmp, "journal.log")).read()
    assert "config: journal/tick_interval=1000" in text and "config: journal/map_max=" in text


def check_units(bin_dir, tmp):
    analyze = shutil.which("systemd-analyze")
    units = sorted(f for f in os.listdir(os.path.join(DEPLOY, "systemd"))
                   if f.endswith((".service", ".target")))
    assert len([u for u in units if u.endswith(".service")]) == len(SERVICES), units
    for name in SERVICES:
        text = open(os.path.join(DEPLOY, "systemd", "partnerbus-%s.service" % name)).read()
        assert "ExecStart=/usr/local/bin/pb-%s --config /etc/partnerbus/partnerbus.cfg\n" \
            % name in text, name
        assert "ExecStartPre=/usr/local/bin/pb-%s --config /etc/partnerbus/partnerbus.cfg " \
            "--check-config\n" % name in text, name
        for option in HARDENING:
            assert option in text, (name, option)
    if not analyze:
        print("     (systemd-analyze not installed: verify and security skipped)")
        return
    unit_dir = os.path.join(tmp, "units")
    os.mkdir(unit_dir)
    for unit in units:
        text = open(os.path.join(DEPLOY, "systemd", unit)).read()
        text = re.sub(r"/usr/local/bin/pb-([a-z]+)",
                      lambda m: binary(bin_dir, m.group(1)), text)
        with open(os.path.join(unit_dir, unit), "w") as f:
            f.write(text)
    paths = [os.path.join(unit_dir, u) for u in units]
    proc = subprocess.run([analyze, "verify", "--man=no"] + paths,
                          capture_output=True, timeout=120)
    said = (proc.stdout + proc.stderr).decode().strip()
    assert proc.returncode == 0 and not said, said
    for name in SERVICES:
        path = os.path.join(unit_dir, "partnerbus-%s.service" % name)
        proc = subprocess.run([analyze, "security", "--offline=yes", "--no-pager", path],
                              capture_output=True, timeout=120)
        out = proc.stdout.decode()
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
        assert m, out[-500:] + proc.stderr.decode()
        print("     partnerbus-%s.service: exposure %s" % (name, m.group(1)))
        assert float(m.group(1)) < 2.5, out[-3000:]


def main():
    args = pbtest.parse_args()
    results = pbtest.Results("it_deploy")
    tmp = tempfile.mkdtemp(prefix="pb-it-deploy-")
    try:
        results.run("config: every service loads deploy/partnerbus.cfg",
                    check_config, args.bin_dir, tmp)
        results.run("live: pb-journal runs on it", check_live, args.bin_dir, tmp)
        results.run("units: verify, hardening, ExecStart", check_units, args.bin_dir, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results.finish()


if __name__ == "__main__":
    main()
