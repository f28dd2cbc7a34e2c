#!/usr/bin/env python3
"""Writes N distinct modules DIR/m00.wasm … : testdata/fib.wasm plus a
custom section holding the index and PAD bytes of random padding (default
0), so that each has its own sha256 and, with PAD, its own size.

    bench/modules.py DIR N [PAD]
"""
import os
import sys


def leb(n):
    out = b''
    while True:
        b, n = n & 0x7f, n >> 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def main():
    out, n = sys.argv[1], int(sys.argv[2])
    pad = os.urandom(int(sys.argv[3])) if len(sys.argv) > 3 else b''
    wasm = open(os.path.join(os.path.dirname(__file__), '..', 'testdata', 'fib.wasm'), 'rb').read()
    os.makedirs(out, exist_ok=True)
    for i in range(n):
        payload = leb(1) + b'x' + str(i).encode().rjust(4, b'0') + pad
        with open(os.path.join(out, f'm{i:02d}.wasm'), 'wb') as f:
            f.write(wasm + b'\x00' + leb(len(payload)) + payload)


main()
