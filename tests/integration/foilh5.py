"""foilh5.py — foil's HDF5 integrity header (storage/h5io.h), written and
read in plain Python for tests that make foil files with h5py.

A foil file has a 512-byte HDF5 user block (h5py.File(..., "w",
userblock_size=512)); its first 28 bytes, little-endian:
magic b"FOILH5\\r\\n", version u32 (1), CRC-32 of bytes [512, EOF) u32,
file length u64, CRC-32 of bytes [0, 24) u32.
"""
import os
import struct
import zlib

USERBLOCK = 512
MAGIC = b"FOILH5\r\n"


def sign(path):
    """Writes a valid header for path's bytes (after h5py has closed it)."""
    size = os.path.getsize(path)
    if size <= USERBLOCK:
        raise ValueError(path + ": no 512-byte user block")
    crc = 0
    with open(path, "r+b") as f:
        f.seek(USERBLOCK)
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            crc = zlib.crc32(b, crc)
        head = MAGIC + struct.pack("<IIQ", 1, crc & 0xffffffff, size)
        head += struct.pack("<I", zlib.crc32(head) & 0xffffffff)
        f.seek(0)
        f.write(head)


def read_header(path):
    """(version, crc, length, header_ok) of path's header, or None without one."""
    with open(path, "rb") as f:
        h = f.read(28)
    if len(h) < 28 or h[:8] != MAGIC:
        return None
    version, crc, length = struct.unpack("<IIQ", h[8:24])
    (hcrc,) = struct.unpack("<I", h[24:28])
    return version, crc, length, hcrc == (zlib.crc32(h[:24]) & 0xffffffff)


def verify(path):
    """True when path's header matches its length and bytes [512, EOF)."""
    h = read_header(path)
    if h is None or not h[3] or h[0] != 1 or h[2] != os.path.getsize(path):
        return False
    with open(path, "rb") as f:
        f.seek(USERBLOCK)
        return (zlib.crc32(f.read()) & 0xffffffff) == h[1]
