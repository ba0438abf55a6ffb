"""LLM workloads as lists of ops: GEMMs with named operand roles, batched attention GEMMs (MHA/GQA)
and vector ops, built from a Hugging Face config.json (docs/llm.md, "Workload model")."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tpesim.errors import ConfigError, FileFormatError, WorkloadError

__all__ = ["Gemm", "VectorOp", "ModelSpec", "SHIPPED", "MODELS_DIR", "load_config", "resolve_model",
           "layer_ops", "head_ops", "tail_ops", "query_blocks", "decode_keys", "VECTOR_KINDS"]

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
# CLI name -> shipped config.json (kernels/models/README.md gives each file's source)
SHIPPED = {
    "llama2-7b": "llama2_7b.json",
    "llama3-8b": "llama3_8b.json",
    "mistral-7b": "mistral_7b.json",
    "opt-6.7b": "opt_6.7b.json",
    "bitnet-b1.58-3b": "bitnet_b158_3b.json",
    "gpt2": "gpt2.json",
}

# kind -> (passes over the elements, input tensors read per output element); docs/llm.md
VECTOR_KINDS = {
    "embedding": (1, 1),   # gather one row of the table per token
    "rmsnorm": (2, 1),     # sum of squares, then scale
    "layernorm": (3, 1),   # mean, variance, normalize
    "rotary": (1, 1),      # one rotation per element pair, both elements
    "softmax": (3, 1),     # row max, exp and sum, scale
    "silu_mul": (1, 2),    # silu(gate) * up (gated MLP)
    "silu": (1, 1),
    "gelu": (1, 1),
    "relu": (1, 1),
    "add": (1, 2),         # residual add
    "mul": (1, 2),
    "elementwise": (1, 1),
}


@dataclass(frozen=True)
class Gemm:
    """`count` identical GEMMs C[m x n] = A[m x k] B[k x n] on the engine of `op_class`.

    roles names the three operands (A, B, C) as the model uses them, e.g. ("x", "W_q", "q") or
    ("q", "K cache", "scores"); `op_class` is "linear" (B = weights) or "attention" (B = K or V).
    """

    name: str
    op_class: str
    m: int
    n: int
    k: int
    count: int = 1
    roles: tuple[str, str, str] = ("a", "b", "c")

    @property
    def macs(self) -> int:
        return self.m * self.n * self.k * self.count


@dataclass(frozen=True)
class VectorOp:
    """`count` vector ops of `kind` over `elems` output elements each, on the vector unit."""

    name: str
    kind: str
    elems: int
    count: int = 1
    op_class: str = "vector"

    macs = 0

    @property
    def passes(self) -> int:
        return VECTOR_KINDS[self.kind][0]

    @property
    def inputs(self) -> int:
        return VECTOR_KINDS[self.kind][1]


@dataclass(frozen=True)
class ModelSpec:
    """A decoder-only transformer's shapes (no weights).

    Attributes
    ----------
    name, source : str
        Display name; the file it was read from.
    hidden, intermediate, heads, kv_heads, head_dim, layers, vocab : int
        Model width, MLP width, query heads, key/value heads (GQA when fewer than heads), width of
        one head, decoder layers, vocabulary.
    norm : {"rmsnorm", "layernorm"}
    act : {"silu", "gelu", "relu"}
    gated : bool
        MLP is act(x W_gate) * (x W_up) then W_down (Llama); else act(x W_fc1) W_fc2.
    rotary : bool
        Rotary position embedding on q and k (else learned positions: one add, folded into the
        embedding op).
    fused_qkv : bool
        One q/k/v projection GEMM (GPT-2's c_attn) instead of three.
    window : int or None
        Sliding attention window (Mistral's `sliding_window`): a query at position i attends to
        keys (i - window, i] only, so at most `window` keys per query and a KV cache of at most
        `window` entries per KV head; None: full causal attention.
    """

    name: str
    source: str
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    layers: int
    vocab: int
    norm: str = "rmsnorm"
    act: str = "silu"
    gated: bool = True
    rotary: bool = True
    fused_qkv: bool = False
    window: int | None = None

    @property
    def group(self) -> int:
        """Query heads per key/value head."""
        return self.heads // self.kv_heads

    def summary(self) -> str:
        kv = f"{self.kv_heads} KV heads (GQA {self.group}:1)" if self.group > 1 else "MHA"
        win = f", sliding window {self.window}" if self.window else ""
        return (f"{self.name}: {self.layers} layers, hidden {self.hidden}, {self.heads} heads of "
                f"{self.head_dim} ({kv}{win}), {'gated ' if self.gated else ''}{self.act} MLP "
                f"{self.intermediate}, {self.norm}, vocab {self.vocab}")


# -- config.json -----------------------------------------------------------------------------------
def _field(cfg: dict, path: Path, *names, default=None, kind=int):
    for name in names:
        if name in cfg and cfg[name] is not None:
            v = cfg[name]
            if kind is int:
                if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                    raise FileFormatError(f"{path}: field {name!r} must be a positive integer, "
                                          f"not {v!r}")
            elif kind is str and not isinstance(v, str):
                raise FileFormatError(f"{path}: field {name!r} must be a string, not {v!r}")
            return v
    if default is None:
        raise FileFormatError(f"{path}: field {names[0]!r} is missing")
    return default


_ACTS = {"silu": "silu", "swish": "silu", "gelu": "gelu", "gelu_new": "gelu", "gelu_fast": "gelu",
         "gelu_pytorch_tanh": "gelu", "quick_gelu": "gelu", "relu": "relu"}


def load_config(path) -> ModelSpec:
    """A ModelSpec from a Hugging Face config.json (llama/mistral/qwen2-style, opt, gpt2 keys).

    Raises FileFormatError naming the file and the field for anything missing or malformed."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise FileFormatError(f"{path}: cannot read the model config ({e.strerror})") from None
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as e:
        raise FileFormatError(f"{path}: not JSON (line {e.lineno}: {e.msg})") from None
    if not isinstance(cfg, dict):
        raise FileFormatError(f"{path}: a config.json must hold a JSON object, not "
                              f"{type(cfg).__name__}")
    mtype = _field(cfg, path, "model_type", default="llama", kind=str)
    name = path.stem
    if mtype == "gpt2":
        hidden = _field(cfg, path, "n_embd", "hidden_size")
        heads = _field(cfg, path, "n_head", "num_attention_heads")
        spec = dict(hidden=hidden, heads=heads, kv_heads=heads,
                    intermediate=_field(cfg, path, "n_inner", default=4 * hidden),
                    layers=_field(cfg, path, "n_layer", "num_hidden_layers"),
                    vocab=_field(cfg, path, "vocab_size"), norm="layernorm", gated=False,
                    rotary=False, fused_qkv=True,
                    act=_field(cfg, path, "activation_function", default="gelu_new", kind=str))
        act_field = "activation_function"
    elif mtype == "opt":
        hidden = _field(cfg, path, "hidden_size")
        heads = _field(cfg, path, "num_attention_heads")
        spec = dict(hidden=hidden, heads=heads, kv_heads=heads,
                    intermediate=_field(cfg, path, "ffn_dim"),
                    layers=_field(cfg, path, "num_hidden_layers"),
                    vocab=_field(cfg, path, "vocab_size"), norm="layernorm", gated=False,
                    rotary=False, act=_field(cfg, path, "activation_function", default="relu",
                                             kind=str))
        act_field = "activation_function"
        proj = cfg.get("word_embed_proj_dim", hidden)
        if proj != hidden:
            raise FileFormatError(f"{path}: field 'word_embed_proj_dim' {proj!r} differs from "
                                  f"hidden_size {hidden} (the projection is not modelled)")
    else:
        hidden = _field(cfg, path, "hidden_size")
        heads = _field(cfg, path, "num_attention_heads")
        spec = dict(hidden=hidden, heads=heads,
                    kv_heads=_field(cfg, path, "num_key_value_heads", default=heads),
                    intermediate=_field(cfg, path, "intermediate_size"),
                    layers=_field(cfg, path, "num_hidden_layers"),
                    vocab=_field(cfg, path, "vocab_size"), norm="rmsnorm", gated=True,
                    rotary=True, act=_field(cfg, path, "hidden_act", default="silu", kind=str))
        act_field = "hidden_act"
        # Mistral: sliding_window; Qwen2: the same key, in force only with use_sliding_window
        if cfg.get("sliding_window") is not None and cfg.get("use_sliding_window", True) is not False:
            spec["window"] = _field(cfg, path, "sliding_window")
        if "head_dim" in cfg and cfg["head_dim"] is not None:
            spec["head_dim"] = _field(cfg, path, "head_dim")
    if spec["act"] not in _ACTS:
        raise FileFormatError(f"{path}: field {act_field!r} must be one of "
                              f"{', '.join(sorted(_ACTS))}, not {spec['act']!r}")
    spec["act"] = _ACTS[spec["act"]]
    if "head_dim" not in spec:
        if spec["hidden"] % spec["heads"]:
            raise FileFormatError(f"{path}: field 'num_attention_heads' ({spec['heads']}) must "
                                  f"divide the hidden size {spec['hidden']}")
        spec["head_dim"] = spec["hidden"] // spec["heads"]
    if spec["heads"] % spec["kv_heads"]:
        raise FileFormatError(f"{path}: field 'num_key_value_heads' ({spec['kv_heads']}) must "
                              f"divide num_attention_heads ({spec['heads']})")
    return ModelSpec(name=name, source=str(path), **spec)


def resolve_model(model) -> ModelSpec:
    """A shipped model's name (SHIPPED), a config.json path, or a ModelSpec."""
    if isinstance(model, ModelSpec):
        return model
    if not isinstance(model, (str, Path)):
        raise ConfigError(f"model must be a shipped name or a config.json path, not {model!r}")
    if str(model) in SHIPPED:
        spec = load_config(MODELS_DIR / SHIPPED[str(model)])
        return ModelSpec(**{**spec.__dict__, "name": str(model)})
    p = Path(model)
    if p.suffix.lower() == ".json" or p.exists():
        return load_config(p)
    raise ConfigError(f"model must be one of {', '.join(SHIPPED)}, a config.json or an .onnx "
                      f"file, not {str(model)!r}")


# -- the op list of one decoder layer --------------------------------------------------------------
def query_blocks(tokens: int, q_block: int, window: int | None = None) -> list[tuple[int, int]]:
    """(rows, keys) of each causal query block of a prefill: block i holds queries
    [s, e) = [i*q_block, i*q_block + rows) and attends to keys [0, e), or with a sliding window W
    to keys [max(0, s - W + 1), e) (query s sees s - W + 1 .. s, query e - 1 sees up to e - 1)."""
    out = []
    for s in range(0, tokens, q_block):
        e = min(s + q_block, tokens)
        first = max(0, s - window + 1) if window else 0
        out.append((e - s, e - first))
    return out


def decode_keys(spec: ModelSpec, past: int) -> int:
    """Keys a decode step's query attends to after `past` cached tokens: past + 1, or at most the
    sliding window (the cache then holds the last `window` tokens)."""
    keys = past + 1
    return min(keys, spec.window) if spec.window else keys


def layer_ops(spec: ModelSpec, *, batch: int, tokens: int, past: int, q_block: int) -> list:
    """The ops of one decoder layer processing `tokens` new tokens per sequence after `past` cached
    ones (prefill: past 0; decode step: tokens 1). Attention GEMMs are per (sequence, KV head),
    the `group` query heads sharing a KV head stacked along M; a prefill is split into causal
    query blocks of `q_block` rows (keys up to the block's end: the masked part of the diagonal
    block is computed, the blocks above it skipped)."""
    if tokens < 1 or past < 0 or batch < 1:
        raise WorkloadError(f"tokens, past and batch must be positive (past >= 0), not "
                            f"{tokens}, {past}, {batch}")
    h, f, d = spec.hidden, spec.intermediate, spec.head_dim
    qd, kvd = spec.heads * d, spec.kv_heads * d
    t = batch * tokens
    norm = spec.norm
    ops: list = [VectorOp("attn_norm", norm, t * h)]
    if spec.fused_qkv:
        ops.append(Gemm("qkv_proj", "linear", t, qd + 2 * kvd, h, roles=("x", "W_qkv", "qkv")))
    else:
        ops += [Gemm("q_proj", "linear", t, qd, h, roles=("x", "W_q", "q")),
                Gemm("k_proj", "linear", t, kvd, h, roles=("x", "W_k", "k (to KV cache)")),
                Gemm("v_proj", "linear", t, kvd, h, roles=("x", "W_v", "v (to KV cache)"))]
    if spec.rotary:
        ops.append(VectorOp("rotary", "rotary", t * (qd + kvd)))
    g, n_kv = spec.group, batch * spec.kv_heads
    blocks = (query_blocks(tokens, q_block, spec.window) if past == 0
              else [(tokens, decode_keys(spec, past))])
    if past:
        if tokens != 1:
            raise WorkloadError(f"a decode step takes 1 token per sequence, not {tokens}")
    for i, (rows, keys) in enumerate(blocks):
        sfx = f"[{i}]" if len(blocks) > 1 else ""
        ops += [Gemm("qk" + sfx, "attention", g * rows, keys, d, n_kv,
                     roles=("q", "K cache^T", "scores")),
                VectorOp("softmax" + sfx, "softmax", g * rows * keys, n_kv),
                Gemm("pv" + sfx, "attention", g * rows, d, keys, n_kv,
                     roles=("probs", "V cache", "attn out"))]
    ops += [Gemm("o_proj", "linear", t, h, qd, roles=("attn out", "W_o", "y")),
            VectorOp("attn_residual", "add", t * h),
            VectorOp("mlp_norm", norm, t * h)]
    if spec.gated:
        ops += [Gemm("gate_proj", "linear", t, f, h, roles=("x", "W_gate", "gate")),
                Gemm("up_proj", "linear", t, f, h, roles=("x", "W_up", "up")),
                VectorOp("act_mul", f"{spec.act}_mul" if spec.act == "silu" else "mul", t * f),
                Gemm("down_proj", "linear", t, h, f, roles=("h", "W_down", "y"))]
        if spec.act != "silu":
            ops.insert(-2, VectorOp("act", spec.act, t * f))
    else:
        ops += [Gemm("fc1", "linear", t, f, h, roles=("x", "W_fc1", "h")),
                VectorOp("act", spec.act, t * f),
                Gemm("fc2", "linear", t, h, f, roles=("h", "W_fc2", "y"))]
    ops.append(VectorOp("mlp_residual", "add", t * h))
    return ops


def head_ops(spec: ModelSpec, *, batch: int, tokens: int) -> list:
    """Before the first layer: the token embedding gather (learned positions added in it)."""
    return [VectorOp("embedding", "embedding", batch * tokens * spec.hidden)]


def tail_ops(spec: ModelSpec, *, batch: int) -> list:
    """After the last layer: final norm and LM head, for the last token of each sequence only
    (the one whose next token is sampled)."""
    return [VectorOp("final_norm", spec.norm, batch * spec.hidden),
            Gemm("lm_head", "linear", batch, spec.vocab, spec.hidden,
                 roles=("x", "W_vocab", "logits"))]

