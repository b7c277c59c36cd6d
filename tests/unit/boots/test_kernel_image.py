"""Reading bzImages: the stock Debian kernel, and small images made here for each compression."""
import bz2
import gzip
import lzma
import struct

import pytest
import zstandard

from bot.boots.kernel_image import BadImage, extract_vmlinux

ELF = b"\x7fELF" + bytes(60)


def bzimage(payload: bytes, setup_sects: int = 1) -> bytes:
    """A minimal image with a boot protocol 2.15 setup header locating `payload`."""
    setup = bytearray((setup_sects + 1) * 512)
    setup[0x1F1] = setup_sects
    setup[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", setup, 0x206, 0x20F)
    struct.pack_into("<II", setup, 0x248, 16, len(payload))
    return bytes(setup) + bytes(16) + payload + b"\x00\x00\x00\x00"


def test_stock_kernel_payload_is_an_elf_with_a_pvh_note(kernel):
    vmlinux = extract_vmlinux(kernel.read_bytes())
    assert vmlinux.startswith(b"\x7fELF")
    assert b"Xen\x00" in vmlinux   # the ELF note owner of XEN_ELFNOTE_PHYS32_ENTRY


@pytest.mark.parametrize("compress", [
    gzip.compress, lzma.compress, bz2.compress, zstandard.ZstdCompressor().compress,
    lambda data: lzma.compress(data, format=lzma.FORMAT_ALONE),
], ids=["gzip", "xz", "bzip2", "zstd", "lzma"])
def test_every_compression_the_kernel_uses(compress):
    assert extract_vmlinux(bzimage(compress(ELF))) == ELF


@pytest.mark.parametrize("image, says", [
    (b"MZ" + bytes(1000), "no HdrS"),
    (bzimage(gzip.compress(ELF))[:600], "truncated"),
    (bzimage(gzip.compress(ELF)[:-12]), "ends early"),
    (bzimage(b"\xfd7zXZ\x00" + bytes(40)), "corrupt xz"),
    (bzimage(gzip.compress(b"not an elf")), "not an ELF"),
    (bzimage(b"\x02\x21\x4c\x18" + bytes(40)), "not supported"),
])
def test_broken_images_say_why(image, says):
    with pytest.raises(BadImage, match=says):
        extract_vmlinux(image)
