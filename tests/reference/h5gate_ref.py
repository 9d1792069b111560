"""h5gate_ref.py — h5py against foil's HDF5 integrity header (storage/h5io.h).

1. foil publishes a checkpoint-format file (test_h5gate_ref write): h5py
   opens it (the 512-byte user block is skipped) and reads its data, and
   the header is checked here in plain Python: magic, version, length and
   zlib CRC-32 of bytes [512, EOF) (tests/integration/foilh5.py).
2. h5py writes files the C side opens (test_h5gate_ref check): a dataset
   with no user block opens; a checkpoint with none is refused; one with a
   user block signed by foilh5.py opens; one changed after signing is
   refused with the checksum message.

usage: h5gate_ref.py TEST_H5GATE_REF SCRATCH_DIR
"""
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import foilh5  # noqa: E402

exe, scratch = sys.argv[1], sys.argv[2]
shutil.rmtree(scratch, ignore_errors=True)
os.makedirs(scratch)
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


subprocess.check_call([exe, "write", scratch])
p = os.path.join(scratch, "foil.h5")
with h5py.File(p, "r") as f:
    check(f.userblock_size == 512, "foil's file has a 512-byte user block (h5py: %d)" % f.userblock_size)
    check(f.attrs["foil_format"] in ("foil.ckpt.v1", b"foil.ckpt.v1"), "h5py reads foil_format")
    check(np.array_equal(f["model/x"][()], np.array([[1, 2, 3], [4, 5, 6.5]], np.float32)), "h5py reads model/x")
    texts = [t.decode() if isinstance(t, bytes) else t for t in f["texts"][()]]
    check(texts == ["alpha", "naïve"], "h5py reads the strings")
    check(int(f.attrs["step"]) == 7, "h5py reads the step attribute")
h = foilh5.read_header(p)
check(h is not None and h[0] == 1 and h[3], "the header has foil's magic, version 1 and a valid own CRC")
check(h is not None and h[2] == os.path.getsize(p), "the header's length is the file's")
check(foilh5.verify(p), "the header's CRC-32 is zlib's of bytes [512, EOF)")

x = np.array([0.5, 1.5, 2.5, 3.5], np.float32)
with h5py.File(os.path.join(scratch, "py_pairs.h5"), "w") as f:
    f.attrs["foil_format"] = "foil.pairs.v1"
    f["x"] = x
with h5py.File(os.path.join(scratch, "py_ckpt.h5"), "w") as f:
    f.attrs["foil_format"] = "foil.ckpt.v1"
    f["x"] = x
for name in ("py_signed.h5", "py_badsign.h5"):
    q = os.path.join(scratch, name)
    with h5py.File(q, "w", userblock_size=foilh5.USERBLOCK) as f:
        f.attrs["foil_format"] = "foil.ckpt.v1"
        f["x"] = x
    foilh5.sign(q)
    check(foilh5.verify(q), name + ": signed in Python, verified in Python")
q = os.path.join(scratch, "py_badsign.h5")
with open(q, "r+b") as f:          # change the last float's bytes after signing
    data = bytearray(f.read())
    at = data.rfind(np.float32(3.5).tobytes())
    f.seek(at)
    f.write(np.float32(-3.5).tobytes())
check(not foilh5.verify(q), "py_badsign.h5: changed after signing")
with h5py.File(q, "r") as f:     # libhdf5 alone does not notice
    check(f["x"][3] == -3.5, "h5py reads the changed file without complaint (what the header adds)")
check(subprocess.call([exe, "check", scratch]) == 0, "foil opens or refuses each file as h5io.h's table says")

if failures:
    print("%d FAILED" % len(failures))
    sys.exit(1)
print("all ok")
