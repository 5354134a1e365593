"""faults - what the storage-fault tests share (tests/faults/README.md):
a small tmpfs to fill, and fiu-ctrl to turn libfiu's failure points on
and off in a process run under fiu-run."""

import os
import shutil
import subprocess
import sys
import tempfile


def mount_tmpfs(prefix, size):
    """A tmpfs of 'size' (mount's syntax: "8m") on a new directory; its
    path, or None (said as a SKIP) where it cannot be mounted."""
    mnt = tempfile.mkdtemp(prefix=prefix)
    rc = subprocess.run(["mount", "-t", "tmpfs", "-o",
                         "size=%s,mode=0700" % size, "tmpfs", mnt],
                        capture_output=True, text=True)
    if rc.returncode != 0:
        os.rmdir(mnt)
        print("SKIP disk full on a real filesystem: mount failed (%s)"
              % rc.stderr.strip(), flush=True)
        return None
    return mnt


def unmount_tmpfs(mnt):
    subprocess.run(["umount", mnt])
    shutil.rmtree(mnt, ignore_errors=True)


def fiu_ctrl(base, pid, command):
    """Run one fiu-ctrl command on 'pid' (started by fiu-run -f 'base')."""
    rc = subprocess.run(["fiu-ctrl", "-f", base, "-c", command, str(pid)],
                        capture_output=True, text=True, timeout=10)
    assert rc.returncode == 0, "fiu-ctrl %r: %s" % (command, rc.stderr)


def finish(res, name, mounted):
    """End a storage-fault test: its results, or exit 77 (ctest: Skipped)
    where nothing failed but the disk-full check could not mount."""
    if not mounted and not res.failed:
        print("%s: disk-full check skipped (no mount)" % name)
        sys.exit(77)
    res.finish()
