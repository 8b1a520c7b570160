#!/usr/bin/env python3
"""Adds (or replaces) a public metadata custom section `icp:public NAME` in a
Wasm module, as `ic-wasm metadata NAME -f FILE -v public` does.

usage: wasm_metadata.py MODULE.wasm NAME FILE
"""
import sys


def leb128(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_leb128(data: bytes, pos: int):
    result, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, pos


def main() -> None:
    module_path, name, content_path = sys.argv[1:4]
    module = open(module_path, "rb").read()
    content = open(content_path, "rb").read()
    if module[:8] != b"\0asm\x01\0\0\0":
        sys.exit(f"{module_path}: not a Wasm module")
    section_name = f"icp:public {name}".encode()
    # Drop any existing section of that name, keep everything else as it is.
    out, pos = bytearray(module[:8]), 8
    while pos < len(module):
        start = pos
        section_id = module[pos]
        size, body = read_leb128(module, pos + 1)
        end = body + size
        keep = True
        if section_id == 0:
            name_len, name_start = read_leb128(module, body)
            existing = module[name_start:name_start + name_len]
            keep = existing not in (section_name, f"icp:private {name}".encode())
        if keep:
            out += module[start:end]
        pos = end
    payload = leb128(len(section_name)) + section_name + content
    out += b"\0" + leb128(len(payload)) + payload
    open(module_path, "wb").write(out)


if __name__ == "__main__":
    main()
