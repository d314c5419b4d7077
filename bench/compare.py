#!/usr/bin/env python3
"""Compares `sdrpn-bench --json` timings with the Hugging Face reference from bench/hf_reference.py.

Usage:
  python3 bench/compare.py ours.json hf.json [--markdown]
  python3 bench/compare.py --ab a.json b.json [--markdown]   (two sdrpn-bench runs: every common row, a/b)

ours.json (sdrpn-bench):  {"preset", "device", "dtype", "prompt_tokens",
                           "rows": [{"id", "name", "ms", "note"}, ...],
                           "values": {"sdrpn_throughput_ratio", "peak_memory_mb", ...}}
hf.json (hf_reference):   {"preset", "device", "dtype", "prompt_tokens", "gpu", "torch", "transformers",
                           "rows": {"vision": ms, "prefill": ms, ...},
                           "values": {"peak_memory_mb", "weights_mb", ...}, "notes": [...]}

Prints a table (row | ours ms | HF ms | ours/HF) pairing
  vision <-> vision, prefill <-> prefill_text (the language model alone, from embeddings),
  prefill_vision <-> prefill (pixels to logits: HF's forward with pixel_values runs the vision tower too),
  prefill_capture_last / prefill_capture_question <-> prefill_attentions (HF with output_attentions=True),
  decode_token <-> decode_token (and <-> decode_token_generate), peak memory <-> peak memory,
then checks the targets (PASS / FAIL / n.a.):
  prefill ours/HF <= 0.80, both like-for-like pairs (language model alone; vision tower included)
  capture overhead prefill_capture_last/prefill - 1 <= 10 %, same for prefill_capture_question
  decode_token <= 10 ms
  values.sdrpn_throughput_ratio >= 0.75
  ours peak_memory_mb <= HF peak_memory_mb
--markdown prints headings and the targets as a table, for pasting into a document.

Exit status: 0 when both files were read (failed targets included: this is a report),
2 when an input file cannot be read or is not a benchmark result.
"""

import argparse
import json
import math
import sys

# (our row id, HF row id or None, label); HF None means HF has no equivalent.
PAIRS = [
    ("vision", "vision", "vision"),
    ("prefill", "prefill_text", "prefill"),
    ("prefill_vision", "prefill", "prefill_vision"),
    ("prefill_capture_last", "prefill_attentions", "prefill_capture_last"),
    ("prefill_capture_question", "prefill_attentions", "prefill_capture_question"),
    ("decode_token", "decode_token", "decode_token"),
    ("decode_token", "decode_token_generate", "decode_token"),
    ("decode_capture", None, "decode_capture"),
]

PREFILL_RATIO_MAX = 0.80
CAPTURE_OVERHEAD_MAX = 0.10
DECODE_TOKEN_MS_MAX = 10.0
THROUGHPUT_RATIO_MIN = 0.75


class InputError(Exception):
    pass


def number(v):
    """A finite float, or None."""
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def load(path, which):
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as e:
        raise InputError(f"cannot read {which} file {path}: {e.strerror or e}")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{which} file {path} is not valid JSON: {e}")
    if not isinstance(data, dict):
        raise InputError(f"{which} file {path}: expected a JSON object at the top level")
    if "rows" not in data:
        raise InputError(f"{which} file {path}: no \"rows\" (is this a benchmark result?)")
    return data


def rows_by_id(data, path, which):
    """{row id: ms} from either a list of {"id"/"name", "ms"} or a {id: ms} object."""
    rows = data.get("rows")
    out = {}
    if isinstance(rows, dict):
        for k, v in rows.items():
            if isinstance(v, dict):
                v = v.get("ms")
            out[str(k)] = number(v)
    elif isinstance(rows, list):
        for r in rows:
            if not isinstance(r, dict):
                raise InputError(f"{which} file {path}: \"rows\" entries must be objects")
            key = r.get("id") or r.get("name")
            if key is None:
                continue
            out.setdefault(str(key), number(r.get("ms")))
    else:
        raise InputError(f"{which} file {path}: \"rows\" must be a list or an object")
    return out


def value(data, key):
    """A number from data["values"][key], falling back to data[key] and data["rows"][key]."""
    vals = data.get("values")
    if isinstance(vals, dict) and key in vals:
        return number(vals[key])
    if key in data:
        return number(data[key])
    rows = data.get("rows")
    if isinstance(rows, dict) and key in rows:
        return number(rows[key])
    return None


def fmt(v, digits=2):
    return "—" if v is None else f"{v:.{digits}f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def table(header, body, aligns):
    widths = [max(len(str(r[i])) for r in [header] + body) for i in range(len(header))]

    def line(cells):
        out = []
        for c, w, a in zip(cells, widths, aligns):
            out.append(str(c).rjust(w) if a == "r" else str(c).ljust(w))
        return "| " + " | ".join(out) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if a == "r" else ("-" * (w + 2)) for w, a in zip(widths, aligns)) + "|"
    return "\n".join([line(header), sep] + [line(r) for r in body])


def describe(data):
    parts = [str(data.get(k)) for k in ("preset", "device", "dtype") if data.get(k) is not None]
    if data.get("gpu"):
        parts.append(str(data["gpu"]))
    if data.get("prompt_tokens") is not None:
        parts.append(f"{data['prompt_tokens']} prompt tokens")
    if data.get("transformers"):
        parts.append(f"transformers {data['transformers']}")
    return ", ".join(parts) if parts else "(no description)"


def compare_runs(path_a, path_b, md):
    """Two sdrpn-bench results side by side (e.g. fused projections against separate ones): every row both
    have, a ms, b ms, a/b; then the peak memory."""
    a = load(path_a, "first")
    b = load(path_b, "second")
    rows_a = rows_by_id(a, path_a, "first")
    rows_b = rows_by_id(b, path_b, "second")
    body = [[k, fmt(v), fmt(rows_b[k]), fmt(ratio(v, rows_b[k]))] for k, v in rows_a.items() if k in rows_b]
    ma, mb = value(a, "peak_memory_mb"), value(b, "peak_memory_mb")
    if ma is not None or mb is not None:
        body.append(["peak memory (MB)", fmt(ma, 0), fmt(mb, 0), fmt(ratio(ma, mb))])
    title = f"{path_a} against {path_b}"
    out = ["## " + title if md else title, "", f"- a: {describe(a)}", f"- b: {describe(b)}", ""]
    out.append(table(["row", "a ms", "b ms", "a/b"], body, "lrrr"))
    print("\n".join(out))


def main(argv=None):
    ap = argparse.ArgumentParser(description="Compare sdrpn-bench timings with the Hugging Face reference.")
    ap.add_argument("ours", help="JSON written by sdrpn-bench --json")
    ap.add_argument("hf", help="JSON written by bench/hf_reference.py --json (with --ab: a second sdrpn-bench run)")
    ap.add_argument("--markdown", action="store_true", help="headings and a targets table, for documents")
    ap.add_argument("--ab", action="store_true", help="both files are sdrpn-bench results: each row, first/second")
    args = ap.parse_args(argv)

    if args.ab:
        try:
            compare_runs(args.ours, args.hf, args.markdown)
        except InputError as e:
            print(f"compare: {e}", file=sys.stderr)
            return 2
        return 0

    try:
        ours = load(args.ours, "ours")
        hf = load(args.hf, "HF")
        our_rows = rows_by_id(ours, args.ours, "ours")
        hf_rows = rows_by_id(hf, args.hf, "HF")
    except InputError as e:
        print(f"compare: {e}", file=sys.stderr)
        return 2

    md = args.markdown
    out = []
    out.append("## sdrpn-bench vs Hugging Face transformers" if md else "sdrpn-bench vs Hugging Face transformers")
    out.append("")
    out.append(f"- ours: {describe(ours)}")
    out.append(f"- HF:   {describe(hf)}")
    warn = []
    for k in ("preset", "dtype", "prompt_tokens"):
        if ours.get(k) is not None and hf.get(k) is not None and str(ours.get(k)) != str(hf.get(k)):
            warn.append(f"{k} differs ({ours.get(k)} vs {hf.get(k)})")
    if warn:
        out.append("- WARNING: " + "; ".join(warn) + ": the comparison is not like for like")
    out.append("")

    # ---------------------------------------------------------------- timings
    body = []
    used_ours = set()
    for our_id, hf_id, label in PAIRS:
        if our_id not in our_rows and (hf_id is None or hf_id not in hf_rows):
            continue
        o = our_rows.get(our_id)
        h = hf_rows.get(hf_id) if hf_id else None
        used_ours.add(our_id)
        hf_label = "" if hf_id is None or hf_id == our_id else f" ↔ {hf_id}"
        body.append([label + hf_label, fmt(o), fmt(h), fmt(ratio(o, h))])
    for our_id, o in our_rows.items():
        if our_id not in used_ours:
            body.append([our_id, fmt(o), "—", "—"])
    # HF's peak over its plain (sdpa) prefill and decoding is the like of ours over one baseline answer; its
    # overall peak also holds the eager attention-map run.
    o_mem = value(ours, "peak_memory_mb")
    h_mem = value(hf, "peak_memory_sdpa_mb")
    if h_mem is None:
        h_mem = value(hf, "peak_memory_mb")
    if o_mem is not None or h_mem is not None:
        body.append(["peak memory (MB)", fmt(o_mem, 0), fmt(h_mem, 0), fmt(ratio(o_mem, h_mem))])
    if md:
        out.append("### Timings (ms)")
        out.append("")
    out.append(table(["row", "ours ms", "HF ms", "ours/HF"], body, "lrrr"))

    paired_hf = {p[1] for p in PAIRS if p[1]}
    extra = [(k, v) for k, v in hf_rows.items() if k not in paired_hf]
    extra_vals = [(k, value(hf, k)) for k in ("peak_memory_sdpa_mb", "weights_mb") if value(hf, k) is not None]
    if extra or extra_vals:
        out.append("")
        out.append("HF-only: " + ", ".join([f"{k} {fmt(v)} ms" for k, v in extra] + [f"{k} {fmt(v, 0)}" for k, v in extra_vals]))
    out.append("")

    # ---------------------------------------------------------------- targets
    targets = []

    def check(name, val, limit_text, ok, shown):
        status = "n.a." if val is None else ("PASS" if ok(val) else "FAIL")
        targets.append([name, shown if val is not None else "—", limit_text, status])

    pre_o = our_rows.get("prefill")
    for label, our_id, hf_id in (
        ("prefill ours/HF (language model alone)", "prefill", "prefill_text"),
        ("prefill ours/HF (vision tower included)", "prefill_vision", "prefill"),
    ):
        r = ratio(our_rows.get(our_id), hf_rows.get(hf_id))
        check(label, r, f"≤ {PREFILL_RATIO_MAX:.2f}", lambda v: v <= PREFILL_RATIO_MAX, fmt(r))
    for cap in ("prefill_capture_last", "prefill_capture_question"):
        ov = ratio(our_rows.get(cap), pre_o)
        ov = None if ov is None else ov - 1.0
        check(
            f"capture overhead {cap}/prefill − 1",
            ov,
            f"≤ {CAPTURE_OVERHEAD_MAX * 100:.0f} %",
            lambda v: v <= CAPTURE_OVERHEAD_MAX,
            "—" if ov is None else f"{ov * 100:+.1f} %",
        )
    dec = our_rows.get("decode_token")
    check("decode_token (ours)", dec, f"≤ {DECODE_TOKEN_MS_MAX:.0f} ms", lambda v: v <= DECODE_TOKEN_MS_MAX, f"{fmt(dec)} ms")
    thr = value(ours, "sdrpn_throughput_ratio")
    check("sdrpn_throughput_ratio", thr, f"≥ {THROUGHPUT_RATIO_MIN:.2f}", lambda v: v >= THROUGHPUT_RATIO_MIN, fmt(thr))
    mem = None if o_mem is None or h_mem is None else o_mem - h_mem
    check(
        "peak memory ours vs HF",
        mem,
        "ours ≤ HF",
        lambda v: v <= 0,
        "—" if mem is None else f"{o_mem:.0f} vs {h_mem:.0f} MB",
    )

    if md:
        out.append("### Targets")
        out.append("")
        out.append(table(["target", "value", "limit", "result"], targets, "llll"))
    else:
        out.append("targets:")
        w = max(len(t[0]) for t in targets)
        for name, shown, limit, status in targets:
            out.append(f"  {status:<4}  {name.ljust(w)}  {shown}  (target {limit})")
    passed = sum(t[3] == "PASS" for t in targets)
    failed = sum(t[3] == "FAIL" for t in targets)
    out.append("")
    out.append(f"targets: {passed} PASS, {failed} FAIL, {len(targets) - passed - failed} n.a.")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
