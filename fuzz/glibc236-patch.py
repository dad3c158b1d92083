"""
Makes a copy of Jazzer.js's libFuzzer addon load on glibc 2.36 (Debian 12).

The linux-x64 prebuild of @jazzer.js/fuzzer 4 was linked against glibc 2.38 and GCC 13's libstdc++,
but needs only three symbols Debian 12 lacks: __isoc23_strtol and __isoc23_strtoul (GLIBC_2.38; C23
strtol, which also reads 0b prefixes) and std::ios_base_library_init() (GLIBCXX_3.4.32; GCC 13's hook
that makes a library pull in the iostream initialisation). In the copy those references are made
unversioned and the two version requirements weak; fuzz/glibc236-shim.cpp provides the three functions
(LD_PRELOAD). Nothing in node_modules is modified. Usage: glibc236-patch.py IN OUT
"""
import struct
import sys

source, target = sys.argv[1], sys.argv[2]
elf = bytearray(open(source, "rb").read())
assert elf[:4] == b"\x7fELF" and elf[4] == 2 and elf[5] == 1, "64-bit little-endian ELF expected"
shoff, = struct.unpack_from("<Q", elf, 0x28)
shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)
sections = []
for i in range(shnum):
    name, kind, _, _, offset, size, link, _, _, entsize = struct.unpack_from("<IIQQQQIIQQ", elf, shoff + i * shentsize)
    sections.append((name, kind, offset, size, link, entsize))
SHT_DYNSYM, SHT_GNU_VERSYM, SHT_GNU_VERNEED = 11, 0x6FFFFFFF, 0x6FFFFFFE
by_kind = {s[1]: s for s in sections}
_, _, dynsym_off, dynsym_size, dynstr_index, dynsym_entsize = by_kind[SHT_DYNSYM]
dynstr_off = sections[dynstr_index][2]
versym_off = by_kind[SHT_GNU_VERSYM][2]


def cstring(offset):
    return bytes(elf[offset : elf.index(0, offset)]).decode()


SYMBOLS = ("__isoc23_strtol", "__isoc23_strtoul", "_ZSt21ios_base_library_initv")
patched = 0
for i in range(dynsym_size // dynsym_entsize):
    name_off, = struct.unpack_from("<I", elf, dynsym_off + i * dynsym_entsize)
    if cstring(dynstr_off + name_off) in SYMBOLS:
        struct.pack_into("<H", elf, versym_off + 2 * i, 1)
        patched += 1
assert patched == len(SYMBOLS), f"expected {len(SYMBOLS)} references, found {patched}"

_, _, verneed_off, _, _, _ = by_kind[SHT_GNU_VERNEED]
need = verneed_off
while True:
    _, cnt, _, aux, nxt = struct.unpack_from("<HHIII", elf, need)
    entry = need + aux
    for _ in range(cnt):
        _, flags, _, name, anext = struct.unpack_from("<IHHII", elf, entry)
        if cstring(dynstr_off + name) in ("GLIBC_2.38", "GLIBCXX_3.4.32"):
            struct.pack_into("<H", elf, entry + 4, flags | 2)  # VER_FLG_WEAK
        entry += anext
    if nxt == 0:
        break
    need += nxt
open(target, "wb").write(elf)
