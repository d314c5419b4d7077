#!/usr/bin/env python3
"""Draws the studio icon (resources/icons/sdrpn-studio.png): a heat-map grid on a dark tile with the
region-of-interest box the method picks. Pure Python, no imaging library: run it to regenerate."""
import math
import struct
import sys
import zlib

SIZE = 256
SS = 3  # supersampling per axis
BG = (0x2B, 0x2D, 0x31)
BOX = (0xFF, 0xC8, 0x3D)


def heat(t):
    # dark blue -> teal -> yellow
    stops = [(0.0, (0x1E, 0x3A, 0x8A)), (0.5, (0x14, 0x9E, 0x9B)), (1.0, (0xF9, 0xE0, 0x4B))]
    for (t0, c0), (t1, c1) in zip(stops, stops[1:]):
        if t <= t1:
            f = (t - t0) / (t1 - t0)
            return tuple(a + (b - a) * f for a, b in zip(c0, c1))
    return stops[-1][1]


def inside_rounded(x, y, x0, y0, x1, y1, r):
    cx = min(max(x, x0 + r), x1 - r)
    cy = min(max(y, y0 + r), y1 - r)
    return (x - cx) ** 2 + (y - cy) ** 2 <= r * r


GRID = 6
G0, G1 = 40.0, 216.0
CELL = (G1 - G0) / GRID
GAP = 4.0
HOT = (3.6, 2.4)  # hotspot centre in cells


def cell_value(i, j):
    d = math.hypot(i + 0.5 - HOT[0], j + 0.5 - HOT[1])
    return math.exp(-d * d / 2.2)


BOX_RECT = (G0 + 2 * CELL - 6, G0 + 1 * CELL - 6, G0 + 5 * CELL + 6, G0 + 4 * CELL + 6)
BOX_W = 9.0


def sample(x, y):
    if not inside_rounded(x, y, 8, 8, SIZE - 8, SIZE - 8, 44):
        return None
    colour = BG
    if G0 <= x < G1 and G0 <= y < G1:
        i, j = int((x - G0) // CELL), int((y - G0) // CELL)
        lx, ly = x - G0 - i * CELL, y - G0 - j * CELL
        if GAP / 2 <= lx < CELL - GAP / 2 and GAP / 2 <= ly < CELL - GAP / 2:
            colour = heat(cell_value(i, j))
    x0, y0, x1, y1 = BOX_RECT
    outer = x0 - BOX_W / 2 <= x <= x1 + BOX_W / 2 and y0 - BOX_W / 2 <= y <= y1 + BOX_W / 2
    inner = x0 + BOX_W / 2 < x < x1 - BOX_W / 2 and y0 + BOX_W / 2 < y < y1 - BOX_W / 2
    if outer and not inner:
        colour = BOX
    return colour


def main(path):
    rows = []
    for py in range(SIZE):
        row = bytearray([0])
        for px in range(SIZE):
            acc = [0.0, 0.0, 0.0]
            covered = 0
            for sy in range(SS):
                for sx in range(SS):
                    c = sample(px + (sx + 0.5) / SS, py + (sy + 0.5) / SS)
                    if c is not None:
                        covered += 1
                        for k in range(3):
                            acc[k] += c[k]
            if covered:
                row += bytes(int(round(a / covered)) for a in acc)
            else:
                row += b"\0\0\0"
            row.append(int(round(255 * covered / (SS * SS))))
        rows.append(bytes(row))
    raw = b"".join(rows)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", SIZE, SIZE, 8, 6, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "sdrpn-studio.png")
