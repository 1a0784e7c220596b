"""The GPT family's config, checked in one place (torch-free).

The config's `gpt:` section (workflow/schemas/config.schema.yaml) describes
one GPT model config -- emb_dim, n_heads, vocab_size, context_length,
n_tokens (the measured sequence length), qkv_bias -- swept over `blocks` (the
family's depth axis), seeds, shortcut flags and norm placements.  The checks
the schema cannot make (emb_dim divisible by n_heads, 2 <= n_tokens <=
context_length) live here, once: the config check (core/config.py) runs them
before any job, and the model (measuring/gpt.py)
runs them before it builds anything.  Each error names the key and the fix.

The book's GPT_CONFIG_124M is reachable by config:

    models: [gpt]
    gpt: {blocks: [12], emb_dim: 768, n_heads: 12, vocab_size: 50257,
          context_length: 1024, n_tokens: 64, qkv_bias: false}

Memory (gpt_mem_mb): the measuring job's peak RSS, measured with
benchmarks/families.py on the 124M cell (64 tokens, one thread, float32), was
~0.4 GiB for the imported torch plus ~2.6x the size of the parameters
(163,009,536 parameters = 622 MiB: weights, gradients and the statistics'
temporaries).  A chunk requests its largest cell's estimate:
TORCH_MB + PARAMETER_FACTOR x its parameters' size + its activations, with
a margin.
"""

import math

from shortcutbench.core.families import SCALE_KEYS, FamilySpec, Layout, register_family
from shortcutbench.core.resources import DTYPE_BYTES

NAME = "gpt"
NORMS = ("pre_layernorm", "post_layernorm", "none")

GPT_CONFIG_124M = {
    "vocab_size": 50257,     # GPT-2's BPE vocabulary
    "context_length": 1024,  # longest sequence the position embedding covers
    "emb_dim": 768,
    "n_heads": 12,
    "n_layers": 12,
    "drop_rate": 0.1,
    "qkv_bias": False,
}

# The model config's keys (besides blocks) that every GPT chunk carries.
MODEL_KEYS = ("emb_dim", "n_heads", "vocab_size", "context_length", "n_tokens", "qkv_bias")

TORCH_MB = 450          # a job's RSS with torch imported (measured ~0.4 GiB)
PARAMETER_FACTOR = 3.0  # peak over the parameters' size (measured 2.6x at 124M)


def _positive_int(key, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{key}: must be a positive integer, got {value!r}")


def gpt_config(blocks, emb_dim, n_heads, vocab_size, context_length, qkv_bias=False):
    """The book's config dict for a GPT of `blocks` TransformerBlocks.

    Raises ValueError naming the config key when the model cannot be built.
    drop_rate is the book's 0.1; the measurement runs in eval mode, where
    dropout does nothing.
    """
    for key, value in (("blocks", blocks), ("emb_dim", emb_dim), ("n_heads", n_heads),
                       ("vocab_size", vocab_size), ("context_length", context_length)):
        _positive_int(key, value)
    if emb_dim % n_heads:
        raise ValueError(f"emb_dim: {emb_dim} is not divisible by n_heads = {n_heads} "
                         f"(each head gets emb_dim / n_heads dimensions); choose an emb_dim "
                         f"that is a multiple of n_heads, or another n_heads")
    if not isinstance(qkv_bias, bool):
        raise ValueError(f"qkv_bias: must be true or false, got {qkv_bias!r}")
    return {"vocab_size": vocab_size, "context_length": context_length, "emb_dim": emb_dim,
            "n_heads": n_heads, "n_layers": blocks, "drop_rate": 0.1, "qkv_bias": qkv_bias}


def check_norm(norm):
    if norm not in NORMS:
        raise ValueError(f"norm: unknown {norm!r}; use one of {', '.join(NORMS)}")


def check_tokens(n_tokens, context_length):
    """The measured sequence: at least 2 tokens (the token-collapse statistic
    needs a pair), at most context_length (the position embedding's rows)."""
    if isinstance(n_tokens, bool) or not isinstance(n_tokens, int):
        raise ValueError(f"n_tokens: must be an integer, got {n_tokens!r}")
    if n_tokens < 2:
        raise ValueError(f"n_tokens: must be at least 2 (the token-collapse statistic needs "
                         f"a pair of tokens), got {n_tokens}")
    if n_tokens > context_length:
        raise ValueError(f"n_tokens: {n_tokens} is more than context_length = "
                         f"{context_length} (the position embedding's rows); lower n_tokens "
                         f"or raise context_length")


def check_section(gpt):
    """The config's (schema-checked) gpt section: every model it asks for
    can be built.  Raises ValueError('key: what is wrong and the fix')."""
    for blocks in gpt["blocks"]:
        gpt_config(blocks, gpt["emb_dim"], gpt["n_heads"], gpt["vocab_size"],
                   gpt["context_length"], gpt["qkv_bias"])
    for norm in gpt["norms"]:
        check_norm(norm)
    check_tokens(gpt["n_tokens"], gpt["context_length"])


def n_parameters(blocks, emb_dim, vocab_size, context_length, qkv_bias=False, **_):
    """GPTModel's parameter count (163,009,536 for GPT_CONFIG_124M)."""
    e = emb_dim
    attention = 3 * (e * e + (e if qkv_bias else 0)) + e * e + e
    feed_forward = e * 4 * e + 4 * e + 4 * e * e + e
    block = attention + feed_forward + 4 * e
    return (vocab_size + context_length) * e + blocks * block + 2 * e + e * vocab_size


def gpt_mem_mb(blocks, emb_dim, n_heads, vocab_size, context_length, n_tokens, qkv_bias=False,
               dtype="float32"):
    """Megabytes a measuring job of GPT cells up to `blocks` blocks needs:
    torch, PARAMETER_FACTOR x the parameters (drawn in float32, then cast),
    and the activations autograd keeps (per block ~24 vectors of emb_dim per
    token and 3 attention matrices per head), with a 25% margin."""
    size = DTYPE_BYTES[dtype]
    parameters = n_parameters(blocks, emb_dim, vocab_size, context_length, qkv_bias)
    weights = parameters * max(size, 4) * PARAMETER_FACTOR
    activations = blocks * (24 * n_tokens * emb_dim + 3 * n_heads * n_tokens ** 2) * 8
    activations += 3 * n_tokens * vocab_size * 8  # logits, their softmax and gradient
    return int(math.ceil(1.25 * (TORCH_MB + (weights + activations) / 2 ** 20)))


def _gpt_memory(section, dtype, checked=None):
    return gpt_mem_mb(max(section["depths"]), section["emb_dim"], section["n_heads"],
                      section["vocab_size"], section["context_length"],
                      section["n_tokens"], section["qkv_bias"], dtype)


SPEC = register_family(FamilySpec(
    NAME, "The book\u2019s GPT (chapter 4)", "blocks", "gpt",
    Layout(profile=r"trf_blocks\.\d+\.att\.W_query\.weight", head=r"out_head\.weight",
           stream=True, point="att.W_query.weight"),
    "shortcutbench.measuring.gpt:GPTFamily",
    # a block's parameters: attention 5 (8 with qkv_bias), feed-forward 4, norms 4
    records_per_block=16,
    fields={"activation": "gelu_tanh", "init": "pytorch"},
    main_variant={"norm": "pre_layernorm"}, model_keys=MODEL_KEYS + SCALE_KEYS,
    norm_axis=True,
    depths_key="blocks", width_key="emb_dim",
    extra_figures=("collapse",), check=check_section, memory=_gpt_memory,
    memory_fix="fewer gpt.blocks or a smaller gpt.emb_dim / vocab_size",
    switch="two residual adds per block, x = x + shortcut around the attention and around "
           "the feed-forward layer (TransformerBlock.sublayer, "
           "shortcutbench/measuring/gpt.py); without shortcut both are left out and the "
           "parameters stay the same",
    switch_blocks=r"trf_blocks\.(\d+)\.",
    # W2 of each block's feed-forward; its placement is the `norm` axis
    laws={"xiong": {"param": r"trf_blocks\.\d+\.ff\.layers\.2\.weight"}},
    analysis_hook="shortcutbench.analysis.gpt_section:gpt_extra",
    template="families/gpt.html.j2", order=1))
