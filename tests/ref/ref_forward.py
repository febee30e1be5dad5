"""An independent numpy implementation of the transformer forward pass, used as
the reference the C engine's logits are compared against (tests/ref/test_forward.py).

Independence: nothing here comes from our C code. The file is read with the
`gguf` package, every tensor is dequantized with `gguf.quants.dequantize`, and
the graph follows what llama.cpp computes for each architecture (facts checked
against llama.cpp's src/models/<arch>.cpp, src/llama-graph.cpp, src/llama-model.cpp,
src/llama-context.cpp, ggml-cpu/ops.cpp and the converters; see the notes at each
architecture below).

Precision: weights are dequantized to float32 and all activations are float32
(numpy BLAS matmuls with float32 accumulation); the reductions of RMSNorm and of
the attention / router softmax are done in float64. The KV cache is kept in float32
unless RefModel(..., kv_dtype=np.float16) asks for an fp16 one, as our engine and
llama.cpp (by default) keep. Against llama.cpp with F32 weights and an F32 cache the
logits agree to ~2e-6 relative (Gemma 3: 3e-3, llama.cpp's GELU uses an fp16 table);
llama.cpp's quantized matmuls quantize the activations (Q8), so on quantized files it
is much further from this exact product than our engine is (see test_forward.py).

Architectures (general.architecture): llama (incl. Mixtral-style MoE), qwen2, qwen3,
qwen3moe, gemma3, phi3. Anything else raises NotImplementedError.

API:
    m = RefModel("model.gguf")
    logits = m.forward(steps)   # steps: list of batches of (seq, pos, token, want_logits)
"""
from __future__ import annotations

import math
import os
from collections import OrderedDict

import gguf
import numpy as np

SUPPORTED_ARCHS = ("llama", "qwen2", "qwen3", "qwen3moe", "gemma3", "phi3")

# rope styles (llama.cpp llama_model_rope_type): NORM rotates adjacent pairs
# (2i, 2i+1); NEOX rotates (i, i + n_rot/2).
ROPE_NORM, ROPE_NEOX = "norm", "neox"
_ROPE_STYLE = {"llama": ROPE_NORM, "qwen2": ROPE_NEOX, "qwen3": ROPE_NEOX, "qwen3moe": ROPE_NEOX,
               "gemma3": ROPE_NEOX, "phi3": ROPE_NEOX}

# Output matrices (token_embd / output.weight) with more elements than this are not
# kept dequantized: they are dequantized in row chunks at the end of every forward().
_OUT_CACHE_MAX_ELEMS = 200_000_000
_OUT_CHUNK_ROWS = 16384

# The parsed file and its dequantized weights are shared between RefModel instances
# of the same file (keyed by path, size and mtime); at most this many files are kept.
_WEIGHT_CACHE_FILES = 2
_weight_caches: "OrderedDict[tuple, dict]" = OrderedDict()


def limit_blas_threads(n: int | None = None) -> bool:
    """Sets the number of OpenBLAS threads numpy uses (default: $RF_REF_BLAS_THREADS or 1).
    The reference does many small matmuls; on a shared 2-core machine one thread is
    both faster and steadier than OpenBLAS's spinning thread pool. Returns whether
    the setting could be applied (numpy built with scipy-openblas)."""
    import ctypes
    if n is None:
        n = int(os.environ.get("RF_REF_BLAS_THREADS", "1"))
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if "openblas" in line and line.rstrip().endswith(".so")}
    except OSError:
        return False
    for lib in libs:
        try:
            dll = ctypes.CDLL(lib)
        except OSError:
            continue
        for sym in ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads", "openblas_set_num_threads"):
            fn = getattr(dll, sym, None)
            if fn is not None:
                fn(ctypes.c_int(n))
                return True
    return False


limit_blas_threads()


def clear_cache() -> None:
    """Drops every cached dequantized weight (frees memory between models)."""
    _weight_caches.clear()


def _cache_for(path: str) -> dict:
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns)
    if key in _weight_caches:
        _weight_caches.move_to_end(key)
        return _weight_caches[key]
    while len(_weight_caches) >= _WEIGHT_CACHE_FILES:
        _weight_caches.popitem(last=False)
    _weight_caches[key] = {"reader": gguf.GGUFReader(path), "w": {}}
    return _weight_caches[key]


def _rms_norm(x: np.ndarray, w: np.ndarray | None, eps: float) -> np.ndarray:
    """ggml_rms_norm over the last axis, then multiplied by w (build_norm LLM_NORM_RMS)."""
    ms = np.mean(np.square(x, dtype=np.float64), axis=-1, keepdims=True)
    y = (x / np.sqrt(ms + eps)).astype(np.float32)
    return y * w if w is not None else y


def _silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    # ggml_gelu (tanh approximation), used by ggml_geglu
    return 0.5 * x * (1.0 + np.tanh(0.7978845608028654 * x * (1.0 + 0.044715 * x * x)))


def _softmax64(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = x.astype(np.float64)
    x = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(x)
    return e / np.sum(e, axis=axis, keepdims=True)


class RefModel:
    def __init__(self, path: str, kv_dtype=np.float32):
        """kv_dtype: the precision the KV cache keeps K (after RoPE) and V in; float16
        models an engine (or llama.cpp's default) that stores an F16 cache: values are
        rounded to it when they enter the cache and read back as float32."""
        self.path = str(path)
        self.kv_dtype = np.dtype(kv_dtype)
        cache = _cache_for(self.path)   # the parsed file and its dequantized weights
        self.reader = cache["reader"]
        self.tensors = {t.name: t for t in self.reader.tensors}
        self._w = cache["w"]
        self._load_hparams()

    # ---- metadata --------------------------------------------------------
    def _kv(self, key, default=None):
        f = self.reader.fields.get(key)
        if f is None:
            return default
        return f.contents()

    def _akv(self, suffix, default=None):
        return self._kv(f"{self.arch}.{suffix}", default)

    def _per_layer(self, v, name):
        if isinstance(v, list):
            if len(v) != self.n_layer:
                raise ValueError(f"{name}: per-layer array of {len(v)} for {self.n_layer} layers")
            return [int(x) for x in v]
        return [int(v)] * self.n_layer

    def _load_hparams(self):
        arch = self._kv("general.architecture")
        if arch not in SUPPORTED_ARCHS:
            raise NotImplementedError(
                f"ref_forward: architecture {arch!r} not supported ({', '.join(SUPPORTED_ARCHS)})")
        self.arch = arch
        self.rope_style = _ROPE_STYLE[arch]
        self.n_layer = int(self._akv("block_count"))
        self.n_embd = int(self._akv("embedding_length"))
        self.n_ctx_train = int(self._akv("context_length", 0) or 0)
        n_head = self._akv("attention.head_count")
        self.n_head = self._per_layer(n_head, "head_count")
        # head_count_kv defaults to head_count (llama-model.cpp)
        self.n_head_kv = self._per_layer(self._akv("attention.head_count_kv", n_head), "head_count_kv")
        self.eps = float(self._akv("attention.layer_norm_rms_epsilon", 1e-5))
        # head size: key_length, else n_embd / n_head (llama-model.cpp load_hparams)
        self.head_dim = int(self._akv("attention.key_length", self.n_embd // self.n_head[0]))
        self.head_dim_v = int(self._akv("attention.value_length", self.n_embd // self.n_head[0]))
        if self.head_dim_v != self.head_dim:
            raise NotImplementedError("ref_forward: key_length != value_length")
        self.n_rot = int(self._akv("rope.dimension_count", self.head_dim))
        if self.n_rot > self.head_dim or self.n_rot % 2:
            raise ValueError(f"bad rope.dimension_count {self.n_rot} for head size {self.head_dim}")
        if arch == "llama" and self.n_rot != self.head_dim:
            raise ValueError(f"llama: n_rot {self.n_rot} != head size {self.head_dim} (llama.cpp rejects it)")

        # rope base and scaling (llama-model.cpp load_hparams, llama-context.cpp)
        self.rope_base = float(self._akv("rope.freq_base", 10000.0))
        stype = self._akv("rope.scaling.type", "linear")
        if stype == "llama3":
            # Not a llama.cpp scaling type (llama.cpp asserts on it). Real Llama 3 GGUFs
            # carry no scaling keys: the scaling lives in rope_freqs.weight. We treat the
            # key as documentation only and ignore rope.scaling.factor with it.
            stype, factor = "none", 0.0
        else:
            factor = float(self._akv("rope.scaling.factor", self._akv("rope.scale_linear", 0.0)) or 0.0)
        if stype not in ("none", "linear", "yarn", "longrope"):
            raise NotImplementedError(f"ref_forward: rope scaling type {stype!r}")
        self.rope_scaling = stype
        self.freq_scale = 1.0 if (factor == 0.0 or stype == "none") else 1.0 / factor
        self.rope_attn_factor = float(self._akv("rope.scaling.attn_factor", 1.0))
        self.yarn_ext_factor = 1.0 if stype == "yarn" else 0.0
        self.yarn_beta_fast, self.yarn_beta_slow = 32.0, 1.0  # llama_hparams defaults
        self.n_ctx_orig = int(self._akv("rope.scaling.original_context_length", self.n_ctx_train) or self.n_ctx_train)
        if self.yarn_ext_factor != 0.0:
            if self._akv("rope.scaling.yarn_log_multiplier", 0.0):
                raise NotImplementedError("ref_forward: yarn_log_multiplier")
            # llama-context.cpp: yarn_attn_factor = get_mscale(1/fs) / (1 + 0.1 ln(1/fs)), then
            # the kernel multiplies by (1 + 0.1 ln(1/fs)) again: net mscale = get_mscale(1/fs).
            f = 1.0 / self.freq_scale
            self.rope_mscale = 1.0 if f <= 1.0 else 0.1 * math.log(f) + 1.0
        else:
            self.rope_mscale = 1.0
        self.rope_mscale *= self.rope_attn_factor

        # per-layer rope base / scale and sliding window (gemma3 only: llama.cpp reads
        # sliding_window for gemma3; phi3's SWA is disabled in llama.cpp; llama/qwen ignore it)
        self.layer_base = [self.rope_base] * self.n_layer
        self.layer_scale = [self.freq_scale] * self.n_layer
        self.layer_swa = [0] * self.n_layer
        if arch == "gemma3":
            n_swa = int(self._akv("attention.sliding_window", 0) or 0)
            if n_swa > 0:
                pat = self._akv("attention.sliding_window_pattern", 6)
                if isinstance(pat, list):
                    is_swa = [bool(x) for x in pat]
                else:
                    p = int(pat)
                    # llama_hparams::set_swa_pattern(n, dense_first=false): the last layer of
                    # every group of n is global: layers 5, 11, 17, ... for n = 6
                    is_swa = [p == 0 or (il % p < p - 1) for il in range(self.n_layer)]
                base_swa = float(self._akv("rope.freq_base_swa", 10000.0))
                for il in range(self.n_layer):
                    if is_swa[il]:
                        self.layer_swa[il] = n_swa
                        self.layer_base[il] = base_swa
                        self.layer_scale[il] = 1.0  # rope_freq_scale_train_swa: no key, 1.0
        self.final_softcap = float(self._akv("final_logit_softcapping", 0.0) or 0.0) if arch == "gemma3" else 0.0

        # attention scale
        if arch == "gemma3":
            # llama_model_gemma3::load_arch_hparams: 1/sqrt(n_embd/n_head) for 27B (62 layers)
            # (query_pre_attn_scalar = hidden/heads there), else 1/sqrt(head_dim)
            if self.n_layer == 62:
                self.kq_scale = 1.0 / math.sqrt(self.n_embd // self.n_head[0])
            else:
                self.kq_scale = 1.0 / math.sqrt(self.head_dim)
        else:
            self.kq_scale = 1.0 / math.sqrt(self.head_dim)

        # MoE
        self.n_expert = int(self._akv("expert_count", 0) or 0)
        self.n_expert_used = int(self._akv("expert_used_count", 0) or 0)
        if arch == "qwen3moe" and (self.n_expert == 0 or self.n_expert_used == 0):
            raise ValueError("qwen3moe: expert_count and expert_used_count must be > 0")
        if self.n_expert and not (0 < self.n_expert_used <= self.n_expert):
            raise ValueError(f"bad expert_used_count {self.n_expert_used} of {self.n_expert}")

        if "token_embd.weight" not in self.tensors:
            raise ValueError("no token_embd.weight")
        te = self.tensors["token_embd.weight"]
        self.n_vocab = int(te.shape[1])
        self.out_name = "output.weight" if "output.weight" in self.tensors else "token_embd.weight"

    # ---- weights ---------------------------------------------------------
    def has(self, name: str) -> bool:
        return name in self.tensors

    def W(self, name: str) -> np.ndarray:
        """Dequantized float32 tensor, numpy shape = reversed GGUF shape (rows = outputs)."""
        w = self._w.get(name)
        if w is None:
            t = self.tensors[name]
            shape = tuple(int(x) for x in reversed([int(d) for d in t.shape]))
            w = np.ascontiguousarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(shape)
            self._w[name] = w
        return w

    def opt(self, name: str) -> np.ndarray | None:
        return self.W(name) if name in self.tensors else None

    def _embed(self, tokens: np.ndarray) -> np.ndarray:
        t = self.tensors["token_embd.weight"]
        if np.any(tokens < 0) or np.any(tokens >= self.n_vocab):
            raise ValueError(f"token id out of range [0, {self.n_vocab})")
        if "token_embd.weight" in self._w:
            return self._w["token_embd.weight"][tokens].copy()
        rows = np.asarray(t.data)[tokens]
        x = gguf.quants.dequantize(rows, t.tensor_type)
        return np.ascontiguousarray(x, dtype=np.float32).reshape(len(tokens), self.n_embd)

    def _output(self, h: np.ndarray) -> np.ndarray:
        """h [n, n_embd] (final-normed) -> logits [n, n_vocab] float32."""
        name = self.out_name
        t = self.tensors[name]
        n_el = int(np.prod([int(d) for d in t.shape]))
        if name in self._w or n_el <= _OUT_CACHE_MAX_ELEMS:
            logits = h @ self.W(name).T
        else:
            data = np.asarray(t.data)
            logits = np.empty((h.shape[0], self.n_vocab), dtype=np.float32)
            for r0 in range(0, self.n_vocab, _OUT_CHUNK_ROWS):
                r1 = min(self.n_vocab, r0 + _OUT_CHUNK_ROWS)
                w = np.ascontiguousarray(gguf.quants.dequantize(data[r0:r1], t.tensor_type), dtype=np.float32)
                logits[:, r0:r1] = h @ w.reshape(r1 - r0, self.n_embd).T
        b = self.opt("output.bias")
        if b is not None:
            logits += b
        if self.final_softcap:
            c = self.final_softcap
            logits = (np.tanh(logits / c) * c).astype(np.float32)
        return logits.astype(np.float32, copy=False)

    # ---- rope ------------------------------------------------------------
    def _rope_cos_sin(self, il: int, pos: np.ndarray):
        """cos, sin [n_tok, n_rot/2] as ggml_rope_ext computes them (rope_yarn)."""
        n_rot = self.n_rot
        base, fscale = self.layer_base[il], self.layer_scale[il]
        i = np.arange(n_rot // 2, dtype=np.float64)
        theta_extrap = pos[:, None].astype(np.float64) * base ** (-2.0 * i / n_rot)[None, :]
        ff = self._rope_freq_factors()
        if ff is not None:
            theta_extrap = theta_extrap / ff[None, :]
        theta = fscale * theta_extrap
        mscale = self.rope_mscale
        if self.yarn_ext_factor != 0.0:
            def corr_dim(beta):
                return n_rot * math.log(self.n_ctx_orig / (beta * 2 * math.pi)) / (2 * math.log(base))
            low = max(0.0, math.floor(corr_dim(self.yarn_beta_fast)))
            high = min(n_rot - 1.0, math.ceil(corr_dim(self.yarn_beta_slow)))
            y = (i - low) / max(0.001, high - low)  # i == i0/2
            ramp = (1.0 - np.clip(y, 0.0, 1.0)) * self.yarn_ext_factor
            theta = theta * (1.0 - ramp)[None, :] + theta_extrap * ramp[None, :]
        return (np.cos(theta) * mscale).astype(np.float32), (np.sin(theta) * mscale).astype(np.float32)

    def _rope_freq_factors(self):
        if self.arch == "llama" and self.has("rope_freqs.weight"):
            # llama 3 rope scaling: theta / rope_freqs[i] (ggml_rope_cache_init freq_factors)
            return self.W("rope_freqs.weight").astype(np.float64).reshape(-1)[: self.n_rot // 2]
        if self.arch == "phi3" and self.has("rope_factors_short.weight"):
            # llama_model::get_rope_factors: the long factors only when the context per
            # sequence exceeds n_ctx_orig_yarn; the reference runs short contexts.
            return self.W("rope_factors_short.weight").astype(np.float64).reshape(-1)[: self.n_rot // 2]
        return None

    def _rope(self, x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
        """x [n_tok, n_heads, head_dim]; rotates the first n_rot dims of every head."""
        n_rot = self.n_rot
        y = x.copy()
        c, s = cos[:, None, :], sin[:, None, :]
        if self.rope_style == ROPE_NORM:
            x0, x1 = x[..., 0:n_rot:2], x[..., 1:n_rot:2]
            y[..., 0:n_rot:2] = x0 * c - x1 * s
            y[..., 1:n_rot:2] = x0 * s + x1 * c
        else:
            h = n_rot // 2
            x0, x1 = x[..., :h], x[..., h:n_rot]
            y[..., :h] = x0 * c - x1 * s
            y[..., h:n_rot] = x0 * s + x1 * c
        return y

    # ---- blocks ----------------------------------------------------------
    @staticmethod
    def _mm(x: np.ndarray, w: np.ndarray) -> np.ndarray:
        # x [n, in] @ w[out, in]^T; (w @ x^T)^T is the faster BLAS path for small n
        return np.ascontiguousarray((w @ x.T).T)

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        y = self._mm(x, self.W(name + ".weight"))
        b = self.opt(name + ".bias")
        return y + b if b is not None else y

    def _qkv(self, il: int, x: np.ndarray):
        p = f"blk.{il}."
        nq, nk = self.n_head[il] * self.head_dim, self.n_head_kv[il] * self.head_dim
        if self.has(p + "attn_qkv.weight"):
            qkv = self._mm(x, self.W(p + "attn_qkv.weight"))
            if self.has(p + "attn_qkv.bias"):
                qkv = qkv + self.W(p + "attn_qkv.bias")
            elif all(self.has(p + f"attn_{n}.bias") for n in "qkv"):
                qkv = qkv + np.concatenate([self.W(p + f"attn_{n}.bias") for n in "qkv"])
            q, k, v = qkv[:, :nq], qkv[:, nq:nq + nk], qkv[:, nq + nk:nq + 2 * nk]
        else:
            q = self._linear(x, p + "attn_q")
            k = self._linear(x, p + "attn_k")
            v = self._linear(x, p + "attn_v")
        n = x.shape[0]
        return (q.reshape(n, self.n_head[il], self.head_dim), k.reshape(n, self.n_head_kv[il], self.head_dim),
                v.reshape(n, self.n_head_kv[il], self.head_dim))

    def _ffn(self, il: int, x: np.ndarray) -> np.ndarray:
        p = f"blk.{il}."
        if self.has(p + "ffn_gate_inp.weight"):
            return self._moe(il, x)
        if self.arch == "phi3" and not self.has(p + "ffn_gate.weight"):
            # fused up: [gate | up] (ggml_swiglu on the halves: silu(first) * second)
            gu = self._linear(x, p + "ffn_up")
            n_ff = gu.shape[1] // 2
            h = _silu(gu[:, :n_ff]) * gu[:, n_ff:]
        else:
            g = self._linear(x, p + "ffn_gate")
            u = self._linear(x, p + "ffn_up")
            h = (_gelu_tanh(g) if self.arch == "gemma3" else _silu(g)) * u
        return self._linear(h, p + "ffn_down")

    def _moe(self, il: int, x: np.ndarray) -> np.ndarray:
        """llm_graph_context::build_moe_ffn as llama (Mixtral) and qwen3moe use it: softmax
        over all experts, top-k of the probabilities, the k weights renormalised to sum 1
        (norm_w = true, sum clamped below at 6.1035e-5), SiLU-gated experts."""
        p = f"blk.{il}."
        logits = self._mm(x, self.W(p + "ffn_gate_inp.weight"))          # [n, n_expert]
        probs = _softmax64(logits)
        k = self.n_expert_used
        sel = np.argsort(-probs, axis=-1, kind="stable")[:, :k]   # [n, k]
        w = np.take_along_axis(probs, sel, axis=-1)
        w = w / np.maximum(w.sum(axis=-1, keepdims=True), 6.103515625e-5)
        gate = self.W(p + "ffn_gate_exps.weight")   # [n_expert, n_ff, n_embd]
        up = self.W(p + "ffn_up_exps.weight")
        down = self.W(p + "ffn_down_exps.weight")   # [n_expert, n_embd, n_ff]
        out = np.zeros_like(x)
        for e in np.unique(sel):
            rows, slot = np.nonzero(sel == e)
            xe = x[rows]
            h = _silu(self._mm(xe, gate[e])) * self._mm(xe, up[e])
            out[rows] += self._mm(h, down[e]) * w[rows, slot][:, None].astype(np.float32)
        return out

    def _attention(self, il: int, q, k_all, v_all, qpos, kpos):
        """q [t, H, d]; k_all, v_all [n, Hkv, d]; causal (+ sliding window) by position."""
        H, Hkv, d = q.shape[1], k_all.shape[1], q.shape[2]
        g = H // Hkv
        t = q.shape[0]
        qh = q.transpose(1, 0, 2).reshape(Hkv, g * t, d)                 # head h = kv*g + j
        kh = k_all.transpose(1, 2, 0)                                   # [Hkv, d, n]
        s = np.matmul(qh, kh).reshape(Hkv, g, t, -1) * np.float32(self.kq_scale)
        mask = kpos[None, :] <= qpos[:, None]
        if self.layer_swa[il]:
            # llama_hparams::is_masked_swa STANDARD: masked when p1 - p0 >= n_swa
            mask &= (qpos[:, None] - kpos[None, :]) < self.layer_swa[il]
        s = np.where(mask[None, None], s, -np.inf)
        pr = _softmax64(s).astype(np.float32)                           # [Hkv, g, t, n]
        o = np.matmul(pr.reshape(Hkv, g * t, -1), v_all.transpose(1, 0, 2))   # [Hkv, g*t, d]
        return o.reshape(H, t, d).transpose(1, 0, 2).reshape(t, H * d)

    # ---- forward ---------------------------------------------------------
    def forward(self, steps) -> list:
        """steps: list of batches; a batch is a list of (seq, pos, token, want_logits) tuples.
        Sequences are independent (each has its own KV cache); within a batch, an entry at
        position p of sequence s attends to all positions <= p of s that were in this or
        earlier batches. Returns the logits (float32 [n_vocab]) of every entry with
        want_logits, in order."""
        kv = {}   # seq -> {"pos": int array, "k": [per layer array], "v": [...]}
        finals = []
        for batch in steps:
            batch = [(int(s), int(p), int(t), bool(w)) for (s, p, t, w) in batch]
            if not batch:
                continue
            seqs = np.array([b[0] for b in batch])
            pos = np.array([b[1] for b in batch], dtype=np.int64)
            toks = np.array([b[2] for b in batch], dtype=np.int64)
            want = np.array([b[3] for b in batch])
            groups = {}
            for i, s in enumerate(seqs.tolist()):
                groups.setdefault(s, []).append(i)
            for s, idx in groups.items():
                old = kv.get(s, {}).get("pos", np.zeros(0, np.int64))
                allp = np.concatenate([old, pos[idx]])
                if len(np.unique(allp)) != len(allp):
                    raise ValueError(f"sequence {s}: a position appears twice")
            for s, idx in groups.items():
                if s not in kv:
                    empty = [np.zeros((0, self.n_head_kv[il], self.head_dim), np.float32) for il in range(self.n_layer)]
                    kv[s] = {"pos": np.zeros(0, np.int64), "k": list(empty), "v": list(empty)}

            x = self._embed(toks)
            if self.arch == "gemma3":
                x = x * np.float32(math.sqrt(self.n_embd))
            for il in range(self.n_layer):
                x = self._layer(il, x, pos, groups, kv)
            for s, idx in groups.items():
                kv[s]["pos"] = np.concatenate([kv[s]["pos"], pos[idx]])
            h = _rms_norm(x[want], self.W("output_norm.weight"), self.eps)
            finals.extend(h)
        if not finals:
            return []
        H = np.stack(finals).astype(np.float32)
        logits = self._output(H)
        return [logits[i].copy() for i in range(logits.shape[0])]

    def _layer(self, il, x, pos, groups, kv):
        p = f"blk.{il}."
        eps = self.eps
        cur = _rms_norm(x, self.W(p + "attn_norm.weight"), eps)
        q, k, v = self._qkv(il, cur)
        if self.arch in ("qwen3", "qwen3moe", "gemma3"):
            q = _rms_norm(q, self.W(p + "attn_q_norm.weight"), eps)
            k = _rms_norm(k, self.W(p + "attn_k_norm.weight"), eps)
        cos, sin = self._rope_cos_sin(il, pos)
        q, k = self._rope(q, cos, sin), self._rope(k, cos, sin)
        attn = np.empty((x.shape[0], self.n_head[il] * self.head_dim), dtype=np.float32)
        for s, idx in groups.items():
            st = kv[s]
            kn, vn = k[idx], v[idx]
            if self.kv_dtype != np.float32:
                kn = kn.astype(self.kv_dtype).astype(np.float32)
                vn = vn.astype(self.kv_dtype).astype(np.float32)
            st["k"][il] = np.concatenate([st["k"][il], kn])
            st["v"][il] = np.concatenate([st["v"][il], vn])
            kpos = np.concatenate([st["pos"], pos[idx]])
            attn[idx] = self._attention(il, q[idx], st["k"][il], st["v"][il], pos[idx], kpos)
        cur = self._linear(attn, p + "attn_output")
        if self.arch == "gemma3":
            cur = _rms_norm(cur, self.W(p + "post_attention_norm.weight"), eps)
        x = x + cur
        cur = _rms_norm(x, self.W(p + "ffn_norm.weight"), eps)
        cur = self._ffn(il, cur)
        if self.arch == "gemma3":
            cur = _rms_norm(cur, self.W(p + "post_ffw_norm.weight"), eps)
        return (x + cur).astype(np.float32, copy=False)
