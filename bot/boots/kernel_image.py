"""Reading x86 kernel images: the bzImage setup header and its compressed vmlinux payload."""
from __future__ import annotations

import bz2
import lzma
import struct
import zlib

import zstandard


class BadImage(Exception):
    """The image is not a kernel bootbot can read: the kernel's fault, not the lab's."""


# The setup header, Documentation/arch/x86/boot.rst: "HdrS" at 0x202; the protected-mode
# code starts after setup_sects (0x1f1) + 1 sectors; payload_offset/length (0x248, protocol
# 2.08+) locate the compressed vmlinux inside it.
_SETUP_SECTS, _MAGIC, _VERSION, _PAYLOAD = 0x1F1, 0x202, 0x206, 0x248


# The magics the kernel's scripts/extract-vmlinux looks for, with a decompressor for each.
_FORMATS = (
    (b"\x1f\x8b", "gzip", lambda: zlib.decompressobj(wbits=31)),
    (b"\xfd7zXZ\x00", "xz", lambda: lzma.LZMADecompressor(format=lzma.FORMAT_XZ)),
    (b"BZh", "bzip2", bz2.BZ2Decompressor),
    (b"\x28\xb5\x2f\xfd", "zstd", lambda: zstandard.ZstdDecompressor().decompressobj()),
    (b"\x5d\x00\x00", "lzma", lambda: lzma.LZMADecompressor(format=lzma.FORMAT_ALONE)),
)


def payload(bzimage: bytes) -> bytes:
    """The compressed vmlinux inside a bzImage."""
    if len(bzimage) < 0x250 or bzimage[_MAGIC:_MAGIC + 4] != b"HdrS":
        raise BadImage("not a bzImage (no HdrS setup header)")
    version = struct.unpack_from("<H", bzimage, _VERSION)[0]
    if version < 0x208:
        raise BadImage(f"boot protocol {version >> 8}.{version & 0xff} is older than 2.08: no payload fields")
    offset, length = struct.unpack_from("<II", bzimage, _PAYLOAD)
    start = ((bzimage[_SETUP_SECTS] or 4) + 1) * 512 + offset
    if start + length > len(bzimage):
        raise BadImage(f"bzImage truncated: payload ends at {start + length}, file has {len(bzimage)} bytes")
    return bzimage[start:start + length]


def extract_vmlinux(bzimage: bytes) -> bytes:
    """The uncompressed ELF vmlinux a bzImage carries."""
    data = payload(bzimage)
    for magic, name, decompressor in _FORMATS:
        if data.startswith(magic):
            stream = decompressor()
            try:
                elf = stream.decompress(data)
            except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error, zstandard.ZstdError) as e:
                raise BadImage(f"corrupt {name} payload: {e}") from None
            if not stream.eof:
                raise BadImage(f"the {name} payload ends early")
            if not elf.startswith(b"\x7fELF"):
                raise BadImage(f"the {name} payload is not an ELF vmlinux")
            return elf
    raise BadImage(f"payload compression not supported (starts {data[:4].hex()})")
