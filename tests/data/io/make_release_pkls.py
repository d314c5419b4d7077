#!/usr/bin/python3
"""Writes small pseudo-label files laid out like SD-RPN's released ones (sdrpn.md section 2.5), for the
import tests: a pickled list of dicts with question_id, prompt, text, image, sink_attn and
grounding_attn_o2i (numpy float arrays of shape (576,) for LLaVA, (24, 24) for Qwen).

usage: make_release_pkls.py OUT_DIR

OUT_DIR receives
  images/coco/a.png (640x480), images/coco/b.png (300x500), images/gqa/c.png (336x336)
  llava_p4.pkl   protocol 4, LLaVA maps (576,): blobs of attention with a few sink tokens, an int
                 question_id, a sample without answer tokens (NaN maps) and a diffuse one (box too large)
  llava_p2.pkl   protocol 2, LLaVA maps (one in float16, one in float64)
  qwen.pkl       protocol 4, Qwen maps (24, 24)
  problems.pkl   one good sample, then a duplicate id, a bad array size, a missing image, a missing key,
                 an infinite value, wrong types
  not_a_list.pkl a dict at the top level
  list_of_str.pkl a list of strings
  evil.pkl       a dict whose 'text' unpickles through os.system (creates OUT_DIR/PWNED if ever run)
  manifest.json  per file and question_id: image, prompt, text and, for finite samples, both maps as
                 float32 values (row-major)
Needs numpy only. Deterministic (fixed seeds).
"""
import json
import os
import pickle
import struct
import sys
import zlib

import numpy as np


def write_png(path, width, height, rgb):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    row = b"\x00" + bytes(rgb) * width
    raw = row * height

    def chunk(kind, data):
        c = kind + data
        return struct.pack(">I", len(data)) + c + struct.pack(">I", zlib.crc32(c) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) +
                chunk(b"IEND", b""))


def blob_maps(rng, center, sigma, sinks, peak=0.02, noise=4e-4, sink_floor=4e-4, sink_value=(0.01, 0.2)):
    """A grounding map with a Gaussian blob of attention plus noise, and a sink map that is small except at
    a few sink tokens, which also draw a lot of (unmasked) grounding attention."""
    r, c = np.mgrid[0:24, 0:24]
    blob = np.exp(-((r - center[0]) ** 2 + (c - center[1]) ** 2) / (2.0 * sigma ** 2))
    g = peak * blob + rng.uniform(0.0, noise, (24, 24))
    s = rng.uniform(0.0, sink_floor, (24, 24))
    for (sr, sc) in sinks:
        s[sr, sc] = rng.uniform(*sink_value)
        g[sr, sc] = rng.uniform(0.05, 0.3)
    return g.astype(np.float32), s.astype(np.float32)


def llava_sample(qid, image, g, s, q2i=True):
    d = {
        "question_id": qid,
        "prompt": "What is in the picture? (%s)" % qid,
        "text": "An answer about %s." % qid,
        "image": image,
        "sink_attn": s.reshape(576),
        "grounding_attn_o2i": g.reshape(576),
    }
    if q2i:
        d["grounding_attn_q2i"] = (g.reshape(576) * 0.5).astype(np.float32)
    return d


def qwen_sample(qid, image, g, s):
    return {
        "question_id": qid,
        "prompt": "Where is the object? (%s)" % qid,
        "text": "1 2 3 4 object",
        "image": image,
        "sink_attn": s.reshape(24, 24),
        "grounding_attn_o2i": g.reshape(24, 24),
    }


def manifest_of(samples):
    out = {}
    for d in samples:
        if not isinstance(d, dict) or "question_id" not in d:
            continue
        qid = str(d["question_id"])
        entry = {k: d[k] for k in ("image", "prompt", "text") if k in d and isinstance(d[k], str)}
        g, s = d.get("grounding_attn_o2i"), d.get("sink_attn")
        if isinstance(g, np.ndarray) and isinstance(s, np.ndarray) and g.size == 576 and s.size == 576 and \
                np.isfinite(g).all() and np.isfinite(s).all():
            entry["grounding"] = [float(v) for v in g.astype(np.float32).reshape(576)]
            entry["sink"] = [float(v) for v in s.astype(np.float32).reshape(576)]
        out.setdefault(qid, entry)  # the first of duplicated ids
    return out


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, ("touch '%s'" % self.marker,))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    write_png(os.path.join(out, "images/coco/a.png"), 640, 480, (200, 30, 30))
    write_png(os.path.join(out, "images/coco/b.png"), 300, 500, (30, 200, 30))
    write_png(os.path.join(out, "images/gqa/c.png"), 336, 336, (30, 30, 200))
    rng = np.random.default_rng(1234)
    manifest = {}

    # LLaVA, protocol 4.
    llava = []
    g, s = blob_maps(rng, (8, 12), 1.6, [(0, 0), (3, 20), (17, 5)])
    llava.append(llava_sample("1001", "coco/a.png", g, s))
    g, s = blob_maps(rng, (15, 6), 2.2, [(11, 11), (22, 1)])
    llava.append(llava_sample("1002", "coco/b.png", g, s))
    g, s = blob_maps(rng, (4, 4), 1.2, [(20, 20)])
    llava.append(llava_sample(1003, "gqa/c.png", g, s))  # an int question_id
    nan = np.full(576, np.nan, dtype=np.float32)
    llava.append(llava_sample("1004", "coco/a.png", nan, nan))  # first answer token was EOS
    g, s = blob_maps(rng, (12, 12), 9.0, [(1, 1)])  # diffuse: the box covers most of the image
    llava.append(llava_sample("1005", "gqa/c.png", g, s))
    with open(os.path.join(out, "llava_p4.pkl"), "wb") as f:
        pickle.dump(llava, f, protocol=4)
    manifest["llava_p4"] = manifest_of(llava)

    # LLaVA, protocol 2, other dtypes.
    llava2 = []
    g, s = blob_maps(rng, (18, 18), 1.8, [(0, 23), (9, 2)])
    llava2.append(llava_sample("2001", "coco/a.png", g.astype(np.float16), s.astype(np.float16), q2i=False))
    g, s = blob_maps(rng, (6, 17), 2.0, [(23, 23)])
    llava2.append(llava_sample("2002", "gqa/c.png", g.astype(np.float64), s.astype(np.float64)))
    with open(os.path.join(out, "llava_p2.pkl"), "wb") as f:
        pickle.dump(llava2, f, protocol=2)
    manifest["llava_p2"] = manifest_of(llava2)

    # Qwen (24, 24), protocol 4: peaks above 5e-3, sinks above 1e-2, noise in the pad band too.
    qwen = []
    g, s = blob_maps(rng, (12, 9), 1.5, [(5, 3), (18, 20)], peak=0.03, noise=1e-3, sink_floor=5e-3,
                     sink_value=(0.02, 0.2))
    qwen.append(qwen_sample("q1", "coco/a.png", g, s))
    g, s = blob_maps(rng, (10, 12), 1.5, [(2, 12)], peak=0.03, noise=1e-3, sink_floor=5e-3,
                     sink_value=(0.02, 0.2))
    qwen.append(qwen_sample("q2", "coco/b.png", g, s))
    with open(os.path.join(out, "qwen.pkl"), "wb") as f:
        pickle.dump(qwen, f, protocol=4)
    manifest["qwen"] = manifest_of(qwen)

    # Problems.
    problems = []
    g, s = blob_maps(rng, (10, 10), 1.5, [(0, 5)])
    problems.append(llava_sample("p_ok", "coco/a.png", g, s))
    g2, s2 = blob_maps(rng, (3, 3), 1.5, [])
    problems.append(llava_sample("p_ok", "coco/b.png", g2, s2))  # duplicated id: skipped
    bad = llava_sample("p_badsize", "coco/a.png", g, s)
    bad["grounding_attn_o2i"] = g.reshape(576)[:575].copy()
    problems.append(bad)
    problems.append(llava_sample("p_lost", "coco/lost.png", g, s))
    nokey = llava_sample("p_nokey", "coco/a.png", g, s)
    del nokey["text"]
    problems.append(nokey)
    inf = llava_sample("p_inf", "coco/a.png", g.copy(), s)
    inf["grounding_attn_o2i"][7] = np.inf
    problems.append(inf)
    wrongtype = llava_sample("p_type", "coco/a.png", g, s)
    wrongtype["prompt"] = 17
    problems.append(wrongtype)
    aslist = llava_sample("p_list", "coco/a.png", g, s)
    aslist["grounding_attn_o2i"] = [float(v) for v in g.reshape(576)]
    problems.append(aslist)
    floatid = llava_sample("x", "coco/a.png", g, s)
    floatid["question_id"] = 3.5
    problems.append(floatid)
    with open(os.path.join(out, "problems.pkl"), "wb") as f:
        pickle.dump(problems, f, protocol=4)
    manifest["problems"] = manifest_of(problems)

    with open(os.path.join(out, "not_a_list.pkl"), "wb") as f:
        pickle.dump(llava_sample("n1", "coco/a.png", g, s), f, protocol=4)
    with open(os.path.join(out, "list_of_str.pkl"), "wb") as f:
        pickle.dump(["1001", "1002"], f, protocol=4)
    evil = llava_sample("e1", "coco/a.png", g, s)
    evil["text"] = Evil(os.path.join(out, "PWNED"))
    with open(os.path.join(out, "evil.pkl"), "wb") as f:
        pickle.dump([evil], f, protocol=4)

    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
