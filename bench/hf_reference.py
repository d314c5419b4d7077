#!/usr/bin/env python3
"""Reference timings of Hugging Face transformers' LLaVA-1.5 and Qwen2.5-VL on the same workload as `sdrpn-bench`.

Builds LlavaForConditionalGeneration or Qwen2_5_VLForConditionalGeneration with real shapes and RANDOM weights
(nothing is downloaded), straight on the device in the compute dtype, and times the paths our C++ core
competes with. Qwen2.5-VL gets a 672x672 image (2304 patches, 24x24 merged cells: 576 image tokens, the
paper's evaluation budget) between <|vision_start|> and <|vision_end|>, which take the last prefix token and
the first suffix token, as sdrpn-bench does:

  vision                        vision tower + projector for one image (get_image_features)
  prefill                       full forward of the prompt (text + 576 image tokens) from pixel_values: vision
                                tower and language model, sdpa, use_cache=True, logits of the last position only
                                (logits_to_keep=1, as generate() does)
  prefill_text                  the same forward from the prompt's embeddings with the image features in
                                place (computed beforehand): the language model alone
  decode_token                  greedy decoding with the DynamicCache the forward creates: prefill once, then a
                                manual loop of --decode-tokens single-token steps, synced once at the end
  generate_total                model.generate(max_new_tokens=N, min_new_tokens=N, do_sample=False), whole call
  decode_token_generate         (generate_total - prefill) / (N - 1): generate() runs one prefill plus N - 1
                                single-token steps to produce N tokens
  prefill_attentions_text_eager the prefill with output_attentions=True, language model switched to eager
                                attention, vision tower left on sdpa (the cheapest way HF returns attentions)
  prefill_attentions            the prefill with output_attentions=True after model.set_attn_implementation("eager"),
                                which is what transformers tells a user to do to get attention maps

All rows are milliseconds: median over --repeats runs after 2 warm-ups (the decode and generate rows use at most
5 and 3 runs), CUDA-synchronised around each run. Memory (MiB) goes under "values": weights_mb,
peak_memory_sdpa_mb (peak before any eager/attention run) and peak_memory_mb (peak over the whole run,
weights included). A row that fails is recorded in "notes" and skipped; the JSON is always written.

Usage:
  python3 bench/hf_reference.py --preset llava-1.5-7b --json out.json [--repeats 10] [--decode-tokens 32]
                                [--prefix-tokens 5] [--suffix-tokens 35] [--device cuda] [--dtype bf16]

Presets: llava-1.5-7b, llava-1.5-13b, qwen2.5-vl-7b, demo and qwen2.5-vl-demo (tiny shapes, still 576 image
tokens; run on a CPU).
Needs torch and transformers (written against transformers 5.x, also tolerates late 4.x).
"""

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
import traceback
import warnings

# Random weights only: nothing may be fetched from a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# CLIP ViT-L/14-336 as used by LLaVA-1.5.
CLIP_L_336 = dict(
    hidden_size=1024,
    intermediate_size=4096,
    num_hidden_layers=24,
    num_attention_heads=16,
    image_size=336,
    patch_size=14,
    num_channels=3,
    layer_norm_eps=1e-5,
    hidden_act="quick_gelu",
    projection_dim=768,
)

PRESETS = {
    "llava-1.5-7b": dict(
        vision=CLIP_L_336,
        text=dict(
            hidden_size=4096,
            intermediate_size=11008,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=32,
            vocab_size=32064,
            rms_norm_eps=1e-5,
            max_position_embeddings=4096,
            hidden_act="silu",
        ),
        rope_theta=10000.0,
        image_token_id=32000,
    ),
    "llava-1.5-13b": dict(
        vision=CLIP_L_336,
        text=dict(
            hidden_size=5120,
            intermediate_size=13824,
            num_hidden_layers=40,
            num_attention_heads=40,
            num_key_value_heads=40,
            vocab_size=32064,
            rms_norm_eps=1e-5,
            max_position_embeddings=4096,
            hidden_act="silu",
        ),
        rope_theta=10000.0,
        image_token_id=32000,
    ),
    "demo": dict(
        vision=dict(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=336,
            patch_size=14,
            num_channels=3,
            layer_norm_eps=1e-5,
            hidden_act="quick_gelu",
            projection_dim=64,
        ),
        text=dict(
            hidden_size=256,
            intermediate_size=512,
            num_hidden_layers=8,
            num_attention_heads=8,
            num_key_value_heads=8,
            vocab_size=1000,
            rms_norm_eps=1e-5,
            max_position_embeddings=4096,
            hidden_act="silu",
        ),
        rope_theta=10000.0,
        image_token_id=999,
    ),
}

# Qwen2.5-VL-7B (mllm_reference.md section 9) and the same structure at demo sizes.
QWEN_7B_VISION = dict(
    depth=32,
    hidden_size=1280,
    intermediate_size=3420,
    num_heads=16,
    in_channels=3,
    patch_size=14,
    spatial_merge_size=2,
    temporal_patch_size=2,
    window_size=112,
    out_hidden_size=3584,
    fullatt_block_indexes=[7, 15, 23, 31],
    hidden_act="silu",
    tokens_per_second=2,
)
QWEN_7B_TEXT = dict(
    hidden_size=3584,
    intermediate_size=18944,
    num_hidden_layers=28,
    num_attention_heads=28,
    num_key_value_heads=4,
    vocab_size=152064,
    rms_norm_eps=1e-6,
    max_position_embeddings=128000,
    hidden_act="silu",
)
QWEN_PRESETS = {
    "qwen2.5-vl-7b": dict(
        vision=QWEN_7B_VISION,
        text=QWEN_7B_TEXT,
        mrope_section=[16, 24, 24],
        rope_theta=1000000.0,
        image_token_id=151655,
        video_token_id=151656,
        vision_start_token_id=151652,
        vision_end_token_id=151653,
    ),
    "qwen2.5-vl-demo": dict(
        vision=dict(
            QWEN_7B_VISION, depth=2, hidden_size=64, intermediate_size=128, num_heads=2, out_hidden_size=256,
            fullatt_block_indexes=[1],
        ),
        text=dict(
            QWEN_7B_TEXT, hidden_size=256, intermediate_size=688, num_hidden_layers=8, num_attention_heads=8,
            num_key_value_heads=2, vocab_size=1024,
        ),
        mrope_section=[4, 6, 6],
        rope_theta=1000000.0,
        image_token_id=1000,
        video_token_id=1001,
        vision_start_token_id=1002,
        vision_end_token_id=1003,
    ),
}
QWEN_GRID = 48  # patches per side of the 672x672 image

WARMUPS = 2
MAX_DECODE_REPEATS = 5
MAX_GENERATE_REPEATS = 3
MIB = 1024.0 * 1024.0


def log(msg):
    print(msg, flush=True)


def finite_or_none(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class Bench:
    def __init__(self, args):
        self.args = args
        self.rows = {}
        self.values = {}
        self.notes = []
        self.result = {
            "preset": args.preset,
            "device": args.device,
            "dtype": args.dtype,
            "torch": None,
            "transformers": None,
            "gpu": None,
            "prompt_tokens": None,
            "rows": self.rows,
            "values": self.values,
            "settings": {
                "repeats": args.repeats,
                "warmups": WARMUPS,
                "decode_tokens": args.decode_tokens,
                "prefix_tokens": args.prefix_tokens,
                "suffix_tokens": args.suffix_tokens,
            },
            "notes": self.notes,
        }
        self.torch = None
        self.model = None
        self.cuda = False
        self.qwen = args.preset in QWEN_PRESETS

    # ---------------------------------------------------------------- helpers

    def note(self, msg):
        self.notes.append(msg)
        log(f"  note: {msg}")

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize()

    def measure(self, fn, repeats, warmups=WARMUPS):
        """Median wall-clock ms of fn() over `repeats` runs after `warmups` runs, synced around each run."""
        for _ in range(warmups):
            fn()
        self.sync()
        times = []
        for _ in range(repeats):
            self.sync()
            t0 = time.perf_counter()
            fn()
            self.sync()
            times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)

    def row(self, name, thunk):
        """Runs one row; any exception becomes a note and the run goes on."""
        log(f"- {name} ...")
        try:
            value = thunk()
        except Exception as e:  # noqa: BLE001 - a failed row must not stop the report
            self.note(f"{name}: failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            traceback.print_exc()
            if self.cuda:
                try:
                    self.torch.cuda.empty_cache()
                except Exception:  # noqa: BLE001
                    pass
            return None
        if value is not None:
            self.rows[name] = round(float(value), 4)
            log(f"  {name}: {value:.3f} ms")
        return value

    # ---------------------------------------------------------------- setup

    def setup_torch(self):
        import torch
        import transformers

        self.torch = torch
        self.result["torch"] = torch.__version__
        self.result["transformers"] = transformers.__version__
        try:
            transformers.logging.set_verbosity_error()
        except Exception:  # noqa: BLE001
            pass
        if not transformers.__version__.startswith("5."):
            self.note(f"written against transformers 5.x, running {transformers.__version__}")

        want = self.args.device
        if want.startswith("cuda") and not torch.cuda.is_available():
            self.note("CUDA requested but not available: running on cpu")
            want = "cpu"
        self.device = torch.device(want)
        self.cuda = self.device.type == "cuda"
        self.result["device"] = str(self.device)
        if self.cuda:
            torch.cuda.set_device(torch.device(self.device).index or 0)
            self.result["gpu"] = torch.cuda.get_device_name(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.result["gpu"] = None
            self.result["cpu"] = platform.processor() or platform.machine()
            self.result["threads"] = torch.get_num_threads()
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[self.args.dtype]

    def make_qwen_config(self):
        from transformers import Qwen2_5_VLConfig

        spec = QWEN_PRESETS[self.args.preset]
        rope = {"rope_type": "default", "rope_theta": spec["rope_theta"], "mrope_section": spec["mrope_section"]}
        text = dict(spec["text"], rope_parameters=rope, tie_word_embeddings=False)
        try:
            cfg = Qwen2_5_VLConfig(
                text_config=text,
                vision_config=dict(spec["vision"]),
                image_token_id=spec["image_token_id"],
                video_token_id=spec["video_token_id"],
                vision_start_token_id=spec["vision_start_token_id"],
                vision_end_token_id=spec["vision_end_token_id"],
                tie_word_embeddings=False,
            )
        except Exception:  # noqa: BLE001 - 4.x: rope_scaling / rope_theta
            text = dict(spec["text"], rope_theta=spec["rope_theta"],
                        rope_scaling={"type": "mrope", "mrope_section": spec["mrope_section"]})
            cfg = Qwen2_5_VLConfig(
                text_config=text,
                vision_config=dict(spec["vision"]),
                image_token_id=spec["image_token_id"],
                video_token_id=spec["video_token_id"],
                vision_start_token_id=spec["vision_start_token_id"],
                vision_end_token_id=spec["vision_end_token_id"],
            )
        self.image_token_id = spec["image_token_id"]
        self.vision_start_id = spec["vision_start_token_id"]
        self.vision_end_id = spec["vision_end_token_id"]
        merge = spec["vision"]["spatial_merge_size"]
        self.n_image_tokens = (QWEN_GRID // merge) ** 2
        self.image_size = QWEN_GRID * spec["vision"]["patch_size"]
        self.patch_dim = (
            spec["vision"]["in_channels"] * spec["vision"]["temporal_patch_size"] * spec["vision"]["patch_size"] ** 2
        )
        self.vocab_size = spec["text"]["vocab_size"]
        return cfg

    def make_config(self):
        if self.qwen:
            return self.make_qwen_config()
        from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

        spec = PRESETS[self.args.preset]
        vision = CLIPVisionConfig(**spec["vision"])

        # transformers 5 keeps RoPE settings in `rope_parameters`; 4.x took `rope_theta`.
        theta = spec["rope_theta"]
        try:
            text = LlamaConfig(**spec["text"], rope_parameters={"rope_type": "default", "rope_theta": theta})
        except Exception:  # noqa: BLE001
            text = LlamaConfig(**spec["text"], rope_theta=theta)
        rp = getattr(text, "rope_parameters", None)
        got_theta = rp.get("rope_theta") if isinstance(rp, dict) else getattr(text, "rope_theta", None)
        if got_theta is None or abs(float(got_theta) - theta) > 1e-6:
            self.note(f"rope_theta is {got_theta}, expected {theta}")

        n_img = (spec["vision"]["image_size"] // spec["vision"]["patch_size"]) ** 2
        itk = spec["image_token_id"]
        # LlavaConfig field is `image_token_index`; `image_token_id` is its attribute_map alias in 5.x.
        full = dict(
            vision_config=vision,
            text_config=text,
            image_token_index=itk,
            projector_hidden_act="gelu",  # mlp2x_gelu: linear -> gelu -> linear
            vision_feature_layer=-2,
            vision_feature_select_strategy="default",
            image_seq_length=n_img,
            multimodal_projector_bias=True,
            tie_word_embeddings=False,
        )
        try:
            cfg = LlavaConfig(**full)
        except Exception:  # noqa: BLE001 - older releases lack some optional fields
            for k in ("image_seq_length", "multimodal_projector_bias", "tie_word_embeddings"):
                full.pop(k)
            cfg = LlavaConfig(**full)
        got_itk = getattr(cfg, "image_token_id", None)
        if got_itk is None:
            got_itk = getattr(cfg, "image_token_index", None)
        if got_itk != itk:
            self.note(f"config image token id is {got_itk}, expected {itk}")
        self.image_token_id = itk
        self.n_image_tokens = n_img
        self.image_size = spec["vision"]["image_size"]
        self.vocab_size = spec["text"]["vocab_size"]
        return cfg

    def build_model(self, cfg):
        torch = self.torch
        if self.qwen:
            from transformers import Qwen2_5_VLForConditionalGeneration as LlavaForConditionalGeneration
        else:
            from transformers import LlavaForConditionalGeneration

        torch.manual_seed(0)
        t0 = time.perf_counter()
        prev = torch.get_default_dtype()
        try:
            try:
                torch.set_default_dtype(self.dtype)
            except Exception:  # noqa: BLE001 - _from_config(dtype=...) sets it too
                pass
            # Parameters are allocated on the device, in the compute dtype, and initialised there:
            # no full fp32 copy and no host-to-device transfer.
            with torch.device(self.device):
                try:
                    model = LlavaForConditionalGeneration._from_config(
                        cfg, dtype=self.dtype, attn_implementation="sdpa"
                    )
                except TypeError as e:
                    if "dtype" not in str(e):
                        raise
                    model = LlavaForConditionalGeneration._from_config(
                        cfg, torch_dtype=self.dtype, attn_implementation="sdpa"
                    )
        finally:
            torch.set_default_dtype(prev)
        model.eval()
        self.sync()
        build_s = time.perf_counter() - t0
        self.model = model

        p = next(model.parameters())
        if p.device.type != self.device.type or p.dtype != self.dtype:
            self.note(f"parameters are {p.dtype} on {p.device}: moving to {self.dtype} on {self.device}")
            model.to(device=self.device, dtype=self.dtype)

        self.check_weights()

        seen, n_bytes, n_params = set(), 0, 0
        for t in list(model.parameters()) + list(model.buffers()):
            key = (t.data_ptr(), t.numel())
            if key in seen:
                continue
            seen.add(key)
            n_bytes += t.numel() * t.element_size()
        for prm in model.parameters():
            n_params += prm.numel()
        self.values["weights_mb"] = round(n_bytes / MIB, 1)
        self.values["params"] = n_params
        self.values["build_s"] = round(build_s, 2)
        log(f"  built in {build_s:.1f} s: {n_params / 1e9:.3f} B parameters, {n_bytes / MIB:.0f} MiB")
        self.note("attention after build: " + self.attn_status())

    def check_weights(self):
        """Random weights must really be random: fix any tensor left empty, zero or non-finite."""
        torch = self.torch
        fixed = []
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                if p.numel() == 0:
                    continue
                # Reductions only: no full-size temporary that would show up in the peak memory.
                total, hi, lo = torch.stack(
                    [p.sum(dtype=torch.float32), p.max().float(), p.min().float()]
                ).tolist()
                finite = all(math.isfinite(x) for x in (total, hi, lo))
                amax = max(abs(hi), abs(lo)) if finite else float("inf")
                lname = name.lower()
                is_bias = lname.endswith(".bias")
                is_norm = "norm" in lname and p.dim() == 1
                bad = (not finite) or amax > 1e3 or (amax == 0.0 and not is_bias)
                if bad:
                    if is_bias:
                        p.zero_()
                    elif is_norm:
                        p.fill_(1.0)
                    else:
                        p.normal_(0.0, 0.02)
                    fixed.append(name)
        if fixed:
            self.note(
                f"default init left {len(fixed)} tensors empty/zero/non-finite; set to normal(0, 0.02) "
                f"(norms 1, biases 0): {', '.join(fixed[:6])}{' ...' if len(fixed) > 6 else ''}"
            )
        std = None
        for _, mod in self.model.named_modules():
            if isinstance(mod, torch.nn.Embedding) and mod.num_embeddings == self.vocab_size:
                std = float(mod.weight[:1024].detach().float().std())
                break
        std_text = "?" if std is None else f"{std:.4f}"
        self.note(f"weights random: token embedding std {std_text}, {len(fixed)} tensors re-initialised")

    def submodels(self):
        """(language model, vision tower) modules, for 5.x (model.model.*) and older layouts."""
        m = self.model
        inner = getattr(m, "model", None)
        lm = getattr(inner, "language_model", None) if inner is not None else None
        vt = getattr(inner, "vision_tower", None) if inner is not None else None
        if vt is None and inner is not None:
            vt = getattr(inner, "visual", None)  # Qwen2.5-VL
        if lm is None:
            lm = getattr(m, "language_model", None)
        if vt is None:
            vt = getattr(m, "vision_tower", None) or getattr(m, "visual", None)
        return lm, vt

    def attn_status(self):
        lm, vt = self.submodels()

        def impl(mod):
            cfg = getattr(mod, "config", None)
            return getattr(cfg, "_attn_implementation", None) if cfg is not None else None

        return f"llava={impl(self.model)} text={impl(lm)} vision={impl(vt)}"

    def set_attn(self, impl):
        """Switches attention the 5.x way (set_attn_implementation); returns (text, vision) implementations."""
        lm, vt = self.submodels()
        # A stale per-config flag would make set_attn_implementation skip a submodel.
        for mod in self.model.modules():
            cfg = getattr(mod, "config", None)
            if cfg is not None and hasattr(cfg, "_attn_was_changed"):
                try:
                    delattr(cfg, "_attn_was_changed")
                except Exception:  # noqa: BLE001
                    pass
        if hasattr(self.model, "set_attn_implementation"):
            self.model.set_attn_implementation(impl)
        else:
            want_text = impl if isinstance(impl, str) else impl.get("text_config")
            want_vision = impl if isinstance(impl, str) else impl.get("vision_config")
            self.model.config._attn_implementation = want_text
            lm.config._attn_implementation = want_text
            vt.config._attn_implementation = want_vision
            self.note("no set_attn_implementation(): set config._attn_implementation by hand")
        return (
            getattr(lm.config, "_attn_implementation", None),
            getattr(vt.config, "_attn_implementation", None),
        )

    def make_inputs(self):
        torch = self.torch
        a = self.args
        g = torch.Generator().manual_seed(0)
        hi = min(31999, self.vocab_size - 1)

        def text_ids(n):
            if n <= 0:
                return []
            ids = torch.randint(2, hi + 1, (n,), generator=g)
            ids[ids == self.image_token_id] = 2
            return ids.tolist()

        self.image_grid_thw = None
        if self.qwen:
            ids = [1] + text_ids(a.prefix_tokens - 2) + [self.vision_start_id]
            ids += [self.image_token_id] * self.n_image_tokens + [self.vision_end_id] + text_ids(a.suffix_tokens - 1)
            self.input_ids = torch.tensor([ids], dtype=torch.long, device=self.device)
            px = torch.randn(QWEN_GRID * QWEN_GRID, self.patch_dim, generator=g)
            self.pixel_values = px.to(device=self.device, dtype=self.dtype)
            self.image_grid_thw = torch.tensor([[1, QWEN_GRID, QWEN_GRID]], dtype=torch.long, device=self.device)
            self.result["prompt_tokens"] = len(ids)
            log(f"  prompt: {len(ids)} tokens ({self.n_image_tokens} image tokens), image {self.image_size}px")
            return
        ids = [1] + text_ids(a.prefix_tokens - 1) + [self.image_token_id] * self.n_image_tokens
        ids += text_ids(a.suffix_tokens)
        self.input_ids = torch.tensor([ids], dtype=torch.long, device=self.device)
        px = torch.randn(1, 3, self.image_size, self.image_size, generator=g)
        self.pixel_values = px.to(device=self.device, dtype=self.dtype)
        self.result["prompt_tokens"] = len(ids)
        log(f"  prompt: {len(ids)} tokens ({self.n_image_tokens} image tokens), image {self.image_size}px")

    # ---------------------------------------------------------------- timed paths

    def forward_prefill(self, **extra):
        kw = dict(input_ids=self.input_ids, pixel_values=self.pixel_values, use_cache=True)
        if self.image_grid_thw is not None:
            kw["image_grid_thw"] = self.image_grid_thw
            kw["attention_mask"] = self.torch.ones_like(self.input_ids)
        if self.logits_to_keep:
            kw["logits_to_keep"] = 1
        kw.update(extra)
        return self.model(**kw)

    def probe_prefill(self):
        """One prefill to settle whether logits_to_keep is accepted, and to sanity-check the outputs."""
        self.logits_to_keep = True
        try:
            out = self.forward_prefill()
        except TypeError as e:
            if "logits_to_keep" not in str(e):
                raise
            self.logits_to_keep = False
            self.note("forward() has no logits_to_keep: prefill computes logits for every position")
            out = self.forward_prefill()
        if self.logits_to_keep:
            self.note(f"prefill uses logits_to_keep=1: logits {tuple(out.logits.shape)}")
        cache = out.past_key_values
        self.note(f"cache after prefill: {type(cache).__name__}")
        if not bool(self.torch.isfinite(out.logits).all()):
            self.note("prefill logits contain non-finite values (random weights)")

    def vision_kwargs(self):
        if self.qwen:
            return dict(pixel_values=self.pixel_values, image_grid_thw=self.image_grid_thw)
        return dict(pixel_values=self.pixel_values, vision_feature_layer=-2, vision_feature_select_strategy="default")

    def time_vision(self):
        def run():
            return self.model.get_image_features(**self.vision_kwargs())

        out = run()
        feats = out
        if hasattr(out, "pooler_output"):  # 5.x: BaseModelOutputWithPooling, features in pooler_output
            feats = out.pooler_output
        if isinstance(feats, (list, tuple)):
            shape = [tuple(f.shape) for f in feats]
        else:
            shape = tuple(feats.shape)
        self.note(f"get_image_features returns {type(out).__name__}, features {shape}")
        return self.measure(run, self.args.repeats)

    def time_prefill(self):
        return self.measure(lambda: self.forward_prefill(), self.args.repeats)

    def qwen_positions(self):
        """M-RoPE position ids [3, 1, L] of the prompt (get_rope_index for one image, written out: the text
        before the image counts 0, 1, ...; merged cell (r, c) gets (s, s + r, s + c) where s is the position
        the next text token would have had; the text after it continues at the largest position + 1)."""
        torch = self.torch
        ids = self.input_ids[0].tolist()
        side = QWEN_GRID // 2
        t, h, w = [], [], []
        nxt, i = 0, 0
        while i < len(ids):
            if ids[i] == self.image_token_id:
                for r in range(side):
                    for c in range(side):
                        t.append(nxt)
                        h.append(nxt + r)
                        w.append(nxt + c)
                nxt += side
                i += side * side
            else:
                t.append(nxt)
                h.append(nxt)
                w.append(nxt)
                nxt += 1
                i += 1
        return torch.tensor([t, h, w], dtype=torch.long, device=self.device).unsqueeze(1)

    def time_prefill_text(self):
        """The language model alone: the prompt's embeddings with the image features in place, computed once
        (Qwen2.5-VL: with its M-RoPE position ids), so that the vision tower is not timed."""
        torch = self.torch
        out = self.model.get_image_features(**self.vision_kwargs())
        feats = getattr(out, "pooler_output", out)
        if isinstance(feats, (list, tuple)):
            feats = torch.cat(list(feats), 0)
        embeds = self.model.get_input_embeddings()(self.input_ids).clone()
        mask = self.input_ids == self.image_token_id
        embeds[mask] = feats.reshape(-1, embeds.shape[-1]).to(embeds.dtype)
        kw = dict(inputs_embeds=embeds, use_cache=True)
        if self.logits_to_keep:
            kw["logits_to_keep"] = 1
        if self.qwen:
            kw.update(position_ids=self.qwen_positions(), attention_mask=torch.ones_like(self.input_ids))
        del out, feats
        return self.measure(lambda: self.model(**kw), self.args.repeats)

    def decode_once(self, n):
        out = self.forward_prefill()
        past = out.past_key_values
        tok = out.logits[:, -1:].argmax(-1)
        del out
        self.sync()
        t0 = time.perf_counter()
        for _ in range(n):
            kw = dict(input_ids=tok, past_key_values=past, use_cache=True)
            if self.logits_to_keep:
                kw["logits_to_keep"] = 1
            out = self.model(**kw)
            past = out.past_key_values
            tok = out.logits[:, -1:].argmax(-1)
        self.sync()
        ms = (time.perf_counter() - t0) * 1e3
        del past, out, tok
        return ms / n

    def time_decode(self):
        n = self.args.decode_tokens
        for _ in range(WARMUPS):
            self.decode_once(n)
        reps = max(1, min(self.args.repeats, MAX_DECODE_REPEATS))
        return statistics.median(self.decode_once(n) for _ in range(reps))

    def generate_once(self, n):
        torch = self.torch
        self.sync()
        t0 = time.perf_counter()
        extra = {} if self.image_grid_thw is None else {"image_grid_thw": self.image_grid_thw}
        seq = self.model.generate(
            input_ids=self.input_ids,
            pixel_values=self.pixel_values,
            attention_mask=torch.ones_like(self.input_ids),
            **extra,
            max_new_tokens=n,
            min_new_tokens=n,
            do_sample=False,
            use_cache=True,
            pad_token_id=0,
        )
        self.sync()
        ms = (time.perf_counter() - t0) * 1e3
        seq = getattr(seq, "sequences", seq)
        return ms, int(seq.shape[1]) - int(self.input_ids.shape[1])

    def time_generate(self):
        n = self.args.decode_tokens
        for _ in range(WARMUPS):
            _, new = self.generate_once(n)
        if new != n:
            self.note(f"generate produced {new} new tokens, asked for {n}")
        reps = max(1, min(self.args.repeats, MAX_GENERATE_REPEATS))
        total = statistics.median(self.generate_once(n)[0] for _ in range(reps))
        self.rows["generate_total"] = round(total, 4)
        log(f"  generate_total: {total:.3f} ms ({n} new tokens)")
        prefill = self.rows.get("prefill")
        if prefill is None or n < 2:
            self.note("decode_token_generate needs the prefill row and --decode-tokens >= 2")
            return None
        return (total - prefill) / (n - 1)

    def time_attentions(self, impl, label):
        text_impl, vision_impl = self.set_attn(impl)
        want_text = impl if isinstance(impl, str) else impl["text_config"]
        want_vision = impl if isinstance(impl, str) else impl["vision_config"]
        self.note(f"{label}: attention now {self.attn_status()}")
        if text_impl != want_text or vision_impl != want_vision:
            raise RuntimeError(f"could not switch attention to text={want_text} vision={want_vision}")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = self.forward_prefill(output_attentions=True)
        for w in caught:
            if "attention" in str(w.message):
                self.note(f"{label}: warning: {str(w.message).splitlines()[0]}")
        atts = getattr(out, "attentions", None)
        if not atts or atts[0] is None:
            self.note(f"{label}: forward returned no attention maps")
        else:
            a0 = atts[0]
            self.note(f"{label}: {len(atts)} attention maps of {tuple(a0.shape)} {str(a0.dtype).replace('torch.', '')}")
        del out, atts
        return self.measure(lambda: self.forward_prefill(output_attentions=True), self.args.repeats)

    # ---------------------------------------------------------------- driver

    def run(self):
        t_start = time.perf_counter()
        self.setup_torch()
        torch = self.torch
        log(
            f"hf_reference: preset {self.args.preset}, {self.device} {self.args.dtype}, torch {torch.__version__}, "
            f"transformers {self.result['transformers']}" + (f", {self.result['gpu']}" if self.result["gpu"] else "")
        )
        cfg = self.make_config()
        self.build_model(cfg)
        self.make_inputs()

        with torch.inference_mode():
            self.logits_to_keep = True
            try:
                self.probe_prefill()
            except Exception as e:  # noqa: BLE001 - the other rows are still worth trying
                self.note(f"first prefill failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
                traceback.print_exc()
            self.row("vision", self.time_vision)
            self.row("prefill", self.time_prefill)
            self.row("prefill_text", self.time_prefill_text)
            self.row("decode_token", self.time_decode)
            self.row("decode_token_generate", self.time_generate)
            if self.cuda:
                self.values["peak_memory_sdpa_mb"] = round(torch.cuda.max_memory_allocated(self.device) / MIB, 1)
            self.row(
                "prefill_attentions_text_eager",
                lambda: self.time_attentions(
                    {"text_config": "eager", "vision_config": "sdpa"}, "prefill_attentions_text_eager"
                ),
            )
            self.row("prefill_attentions", lambda: self.time_attentions("eager", "prefill_attentions"))
        if self.cuda:
            self.values["peak_memory_mb"] = round(torch.cuda.max_memory_allocated(self.device) / MIB, 1)
        self.values["total_s"] = round(time.perf_counter() - t_start, 1)

    def print_table(self):
        log("")
        log(f"| {'row':<30} | {'ms':>10} |")
        log(f"|{'-' * 32}|{'-' * 12}|")
        for k, v in self.rows.items():
            log(f"| {k:<30} | {v:>10.3f} |")
        for k in ("weights_mb", "peak_memory_sdpa_mb", "peak_memory_mb"):
            if k in self.values:
                log(f"| {k:<30} | {self.values[k]:>10.1f} |")
        if self.notes:
            log("notes:")
            for n in self.notes:
                log(f"  - {n}")


def parse_args(argv):
    ap = argparse.ArgumentParser(
        description="Hugging Face transformers reference timings for LLaVA-1.5 and Qwen2.5-VL (random weights)."
    )
    ap.add_argument("--preset", choices=sorted(PRESETS) + sorted(QWEN_PRESETS), default="llava-1.5-7b")
    ap.add_argument("--json", metavar="FILE", help="write the results here")
    ap.add_argument("--repeats", type=int, default=10, help="timed runs per row (median), default 10")
    ap.add_argument("--decode-tokens", type=int, default=32, help="decode steps per decode run, default 32")
    ap.add_argument("--prefix-tokens", type=int, default=5, help="text tokens before the image, BOS included")
    ap.add_argument("--suffix-tokens", type=int, default=35, help="text tokens after the image")
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default cuda)")
    ap.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], default="bf16")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    if args.decode_tokens < 1:
        ap.error("--decode-tokens must be >= 1")
    if args.prefix_tokens < 1:
        ap.error("--prefix-tokens must be >= 1 (it includes BOS)")
    if args.suffix_tokens < 0:
        ap.error("--suffix-tokens must be >= 0")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    bench = Bench(args)
    try:
        bench.run()
    except BaseException as e:  # noqa: BLE001 - the JSON must be written whatever happened
        bench.notes.append(f"run stopped early: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        traceback.print_exc()
        if bench.cuda and bench.torch is not None and "peak_memory_mb" not in bench.values:
            try:
                bench.values["peak_memory_mb"] = round(bench.torch.cuda.max_memory_allocated() / MIB, 1)
            except Exception:  # noqa: BLE001
                pass
    bench.print_table()
    if args.json:
        result = json.loads(json.dumps(bench.result, default=str))
        result["rows"] = {k: finite_or_none(v) for k, v in result["rows"].items()}
        try:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=2)
                f.write("\n")
        except OSError as e:
            print(f"hf_reference: cannot write {args.json}: {e}", file=sys.stderr, flush=True)
            return 2
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
