#!/usr/bin/python3
"""Writes the pickle and PyTorch checkpoint inputs of the io tests, with references to compare against.

    make_pickles.py OUT_DIR [pickles] [torch] [llava FIXTURE_DIR]

pickles: numpy arrays at protocols 2-5, SD-RPN style label lists, nested containers, a malicious pickle.
torch:   torch.save checkpoints (zip and legacy), a sharded folder with pytorch_model.bin.index.json.
llava:   the tiny LLaVA fixture's model.safetensors re-saved as pytorch_model.bin.

Every reference is written without pickle or safetensors: `<name>.bin` holds the raw little-endian C-order
bytes of one array, and `manifest.json` its dtype and shape.

Needs Debian's python3-numpy and python3-torch (run it with /usr/bin/python3).
"""
import collections
import json
import os
import pickle
import shutil
import struct
import sys

import numpy as np


def write_reference(folder, arrays):
    """arrays: name -> (dtype name, shape, raw bytes)."""
    os.makedirs(folder, exist_ok=True)
    manifest = {}
    for i, (name, (dtype, shape, raw)) in enumerate(sorted(arrays.items())):
        file = "t%03d.bin" % i
        with open(os.path.join(folder, file), "wb") as f:
            f.write(raw)
        manifest[name] = {"dtype": dtype, "shape": list(shape), "file": file}
    with open(os.path.join(folder, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


NUMPY_NAMES = {"float32": "F32", "float16": "F16", "float64": "F64", "int64": "I64", "bool": "BOOL",
               "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8"}


def numpy_reference(a):
    c = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<"))
    return NUMPY_NAMES[c.dtype.name], c.shape, c.tobytes()


def make_arrays():
    rng = np.random.RandomState(7)
    big = np.arange(24, dtype=">f4").reshape(4, 6) / 3
    return {
        "f32_576": (np.arange(576, dtype=np.float32) / 7).astype(np.float32),
        "f32_24x24": rng.rand(24, 24).astype(np.float32),
        "f16": (rng.randn(5, 7) * 100).astype(np.float16),
        "f64": rng.randn(3, 2, 4),
        "i64": np.array([-(2 ** 62), -1, 0, 1, 2 ** 40], dtype=np.int64),
        "bool": np.array([[True, False, True], [False, False, True]]),
        "fortran": np.asfortranarray(rng.rand(3, 4, 5).astype(np.float32)),
        "big_endian": big,
        "i8": np.array([-128, 0, 127], dtype=np.int8),
        "u8": np.arange(10, dtype=np.uint8),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "scalar_f": np.float32(2.5),
        "scalar_i": np.int64(-12345678901),
    }


def make_labels():
    rng = np.random.RandomState(11)
    labels = []
    for i in range(4):
        entry = {
            "question_id": "q%05d" % i,
            "prompt": "What colour is the small square? \u00e9\u4e2d",
            "text": "The square is red.",
            "image": "images/demo_%04d.png" % i,
            "sink_attn": rng.rand(576).astype(np.float32),
            "grounding_attn_o2i": rng.rand(24, 24).astype(np.float16),
        }
        if i % 2 == 0:
            entry["grounding_attn_q2i"] = rng.rand(24, 24).astype(np.float32)
        labels.append(entry)
    return labels


def make_nested():
    shared = {"shared": [1, 2, 3]}
    return {
        "ints": [0, 1, -1, 255, 256, 65535, 65536, -2 ** 31, 2 ** 31 - 1, 2 ** 31, 2 ** 62, 2 ** 63 - 1,
                 -2 ** 63],
        "floats": [0.5, -1e300, 3.141592653589793],
        "unicode": "h\u00e9llo \u4e16\u754c \U0001F600",
        "bytes": b"\x00\x01\xff",
        "tuple": (1, ("a", None), [True, False]),
        "nested": {"a": {"b": {"c": [[], {}, ()]}}},
        "same_twice": [shared, shared],
        "set": {7},
        "bytearray": bytearray(b"xyz"),
        "ordered": collections.OrderedDict([("z", 1), ("a", 2)]),
    }


class Malicious:
    def __reduce__(self):
        return (os.system, ("touch /tmp/pwned_x",))


def make_pickles(out):
    arrays = make_arrays()
    for protocol in (2, 3, 4, 5):
        with open(os.path.join(out, "arrays_p%d.pkl" % protocol), "wb") as f:
            pickle.dump(arrays, f, protocol=protocol)
        with open(os.path.join(out, "labels_p%d.pkl" % protocol), "wb") as f:
            pickle.dump(make_labels(), f, protocol=protocol)
        with open(os.path.join(out, "nested_p%d.pkl" % protocol), "wb") as f:
            pickle.dump(make_nested(), f, protocol=protocol)
    write_reference(os.path.join(out, "arrays_ref"),
                    {k: numpy_reference(np.asarray(v)) for k, v in arrays.items()})
    labels = make_labels()
    ref = {}
    for i, entry in enumerate(labels):
        for k, v in entry.items():
            if isinstance(v, np.ndarray):
                ref["%d/%s" % (i, k)] = numpy_reference(v)
    write_reference(os.path.join(out, "labels_ref"), ref)
    with open(os.path.join(out, "malicious.pkl"), "wb") as f:
        pickle.dump({"x": Malicious()}, f, protocol=4)


# ---------------------------------------------------------------------------------------------------------
# torch

TORCH_NAMES = None


def torch_reference(t):
    import torch
    names = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
             torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
             torch.bool: "BOOL"}
    c = t.detach().contiguous()
    raw = (c.view(torch.int16) if c.dtype == torch.bfloat16 else c).numpy().tobytes()
    return names[c.dtype], tuple(c.shape), raw


def make_state():
    import torch
    g = torch.Generator().manual_seed(3)
    base = torch.arange(20, dtype=torch.float32)
    same = torch.randn(2, 3, generator=g)
    state = collections.OrderedDict()
    state["f32"] = torch.randn(3, 4, generator=g)
    state["f16"] = torch.randn(5, generator=g).half()
    state["bf16"] = torch.randn(2, 8, generator=g).to(torch.bfloat16)
    state["f64"] = torch.randn(3, generator=g).double()
    state["i64"] = torch.tensor([-5, 0, 2 ** 40])
    state["i32"] = torch.tensor([1, -2, 3], dtype=torch.int32)
    state["i16"] = torch.tensor([7, -8], dtype=torch.int16)
    state["i8"] = torch.tensor([-1, 1], dtype=torch.int8)
    state["u8"] = torch.tensor([0, 200, 255], dtype=torch.uint8)
    state["flag"] = torch.tensor([True, False, True])
    state["view_a"] = base[2:8]
    state["view_b"] = base[10:16].view(2, 3)
    state["same1"] = same
    state["same2"] = same
    state["transposed"] = torch.randn(4, 5, generator=g).t()
    state["sliced_cols"] = torch.randn(3, 6, generator=g)[:, 1:4]
    state["param"] = torch.nn.Parameter(torch.randn(6, generator=g))
    state["scalar"] = torch.tensor(1.5)
    state["empty"] = torch.zeros(0, 3)
    return state


def make_torch(out):
    import torch
    state = make_state()
    torch.save(state, os.path.join(out, "state.bin"))
    write_reference(os.path.join(out, "state_ref"), {k: torch_reference(v) for k, v in state.items()})
    torch.save({"state_dict": state, "epoch": 3}, os.path.join(out, "wrapped.bin"))
    torch.save(state, os.path.join(out, "legacy.bin"), _use_new_zipfile_serialization=False)

    # A sharded folder as transformers writes it, plus files a conversion must copy.
    folder = os.path.join(out, "sharded")
    os.makedirs(folder, exist_ok=True)
    names = list(state.keys())
    shards = [names[: len(names) // 2], names[len(names) // 2:]]
    weight_map = {}
    for i, keys in enumerate(shards):
        file = "pytorch_model-%05d-of-%05d.bin" % (i + 1, len(shards))
        torch.save(collections.OrderedDict((k, state[k]) for k in keys), os.path.join(folder, file))
        for k in keys:
            weight_map[k] = file
    with open(os.path.join(folder, "pytorch_model.bin.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f, indent=1)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump({"model_type": "test"}, f)
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<s>"}, f)


# ---------------------------------------------------------------------------------------------------------
# llava: the fixture's safetensors read by hand (no safetensors package on Debian)


def read_safetensors(path):
    import torch
    dtypes = {"F16": torch.float16, "F32": torch.float32, "BF16": torch.bfloat16, "F64": torch.float64,
              "I64": torch.int64, "I32": torch.int32}
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    out = collections.OrderedDict()
    for name in sorted(header):
        if name == "__metadata__":
            continue
        e = header[name]
        begin, end = e["data_offsets"]
        t = torch.frombuffer(bytearray(data[begin:end]), dtype=dtypes[e["dtype"]]) if end > begin else \
            torch.zeros(0, dtype=dtypes[e["dtype"]])
        out[name] = t.reshape(e["shape"]).clone()
    return out


def make_llava(out, fixture):
    import torch
    folder = os.path.join(out, "llava-bin")
    os.makedirs(folder, exist_ok=True)
    torch.save(read_safetensors(os.path.join(fixture, "model.safetensors")),
               os.path.join(folder, "pytorch_model.bin"))
    for name in sorted(os.listdir(fixture)):
        if name.endswith(".safetensors") or name.startswith("reference") or name.endswith(".png"):
            continue
        shutil.copy(os.path.join(fixture, name), os.path.join(folder, name))


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = argv[1]
    os.makedirs(out, exist_ok=True)
    parts = argv[2:] or ["pickles", "torch"]
    try:
        if "torch" in parts or "llava" in parts:
            import torch  # noqa: F401
    except ImportError:
        print("make_pickles.py: PyTorch is missing: install python3-torch python3-numpy "
              "(apt-get install python3-torch python3-numpy) and run with /usr/bin/python3", file=sys.stderr)
        return 3
    if "pickles" in parts:
        make_pickles(out)
    if "torch" in parts:
        make_torch(out)
    if "llava" in parts:
        make_llava(out, parts[parts.index("llava") + 1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
