"""The book's GPT (ch. 4), with two knobs for the shortcut study.

`GPTModel`, `TransformerBlock`, `MultiHeadAttention`, `LayerNorm` and
`FeedForward` are the book's classes, written here: the same parameter names,
created in the same order, so `torch.manual_seed(123); GPTModel(cfg)` draws
the book's weights.  The knobs (their defaults are the book's model):

- `shortcut`: False removes both `x = x + shortcut` lines of every block;
  the parameters stay the same.
- `norm`: where the block's LayerNorms sit.
  `pre_layernorm` (the book's)  x = x + f(LN(x))
  `post_layernorm` (the original Transformer's)  x = LN(x + f(x)),
                   and x = LN(f(x)) without shortcut
  `none`  x = x + f(x): every LayerNorm, the final one too, is still created
          (same parameters, same random draws) but not applied.
  The final norm is applied under both placements: at initialisation
  LN(LN(x)) is LN(x) up to eps, so post-LN's head is the book's head.

`GPTFamily` is the family's side of the measurement contract
(measuring/family.py).  A cell (issue 13's measurement):

1. torch.manual_seed(seed) right before GPTModel(cfg); eval mode, so dropout
   is off;
2. input ids arange(n_tokens) % vocab_size as a batch of one, targets the next
   id, (arange(n_tokens) + 1) % vocab_size;
3. loss = cross_entropy(logits.flatten(0, 1), targets.flatten()), one
   backward pass;
4. per named parameter its gradient's mean |grad| and L2 norm, its layer (the
   block index for trf_blocks.{i}.*, -1 for the embeddings, the number of
   blocks for the final norm and the output head) and the RMS of the
   residual stream leaving that layer; per cell the token collapse (mean
   pairwise cosine of the last block's token outputs).

This module imports torch and never pandas, seaborn or Snakemake.
"""

import torch
import torch.nn.functional as F
from torch import nn

from shortcutbench.core.families.gpt import (  # noqa: F401 (the config lives in core, torch-free)
    GPT_CONFIG_124M,
    NAME,
    NORMS,
    check_norm,
    check_tokens,
    gpt_config,
)
from shortcutbench.measuring.family import Family, rms
from shortcutbench.measuring.gelu import GELU


class LayerNorm(nn.Module):
    def __init__(self, emb_dim):
        super().__init__()
        self.eps = 1e-5
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x):
        return layer_norm(x, self.scale, self.shift, self.eps)


def layer_norm(x, scale, shift, eps=1e-5):
    """The book's LayerNorm, op for op (F.layer_norm would round differently)."""
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, keepdim=True, unbiased=False)  # biased, as the book
    norm_x = (x - mean) / torch.sqrt(var + eps)
    return scale * norm_x + shift


class FeedForward(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        # Expand to 4 x emb_dim, GELU, project back: layers.0 and layers.2.
        self.layers = nn.Sequential(
            nn.Linear(cfg["emb_dim"], 4 * cfg["emb_dim"]),
            GELU(),
            nn.Linear(4 * cfg["emb_dim"], cfg["emb_dim"]),
        )

    def forward(self, x):
        return self.layers(x)


class MultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        if d_out % num_heads:
            raise ValueError(f"emb_dim: {d_out} is not divisible by n_heads = {num_heads}")
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        # Created in the book's order: query, key, value, then the output projection.
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        # 1 above the diagonal: the future tokens a token may not attend to.
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length),
                                                diagonal=1))

    def forward(self, x):
        b, num_tokens, _ = x.shape
        keys = self.W_key(x)
        queries = self.W_query(x)
        values = self.W_value(x)
        # (b, tokens, d_out) -> (b, heads, tokens, head_dim): one attention per head.
        keys = keys.view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        queries = queries.view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        values = values.view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)

        attn_scores = queries @ keys.transpose(2, 3)
        mask_bool = self.mask.bool()[:num_tokens, :num_tokens]
        attn_scores.masked_fill_(mask_bool, -torch.inf)  # causal: no looking ahead
        attn_weights = torch.softmax(attn_scores / keys.shape[-1]**0.5, dim=-1)
        attn_weights = self.dropout(attn_weights)

        # Back to (b, tokens, d_out), heads side by side, then mix them.
        context_vec = (attn_weights @ values).transpose(1, 2)
        context_vec = context_vec.contiguous().view(b, num_tokens, self.d_out)
        return self.out_proj(context_vec)


class TransformerBlock(nn.Module):
    def __init__(self, cfg, shortcut=True, norm="pre_layernorm"):
        super().__init__()
        check_norm(norm)
        self.shortcut = shortcut
        self.norm = norm
        self.att = MultiHeadAttention(
            d_in=cfg["emb_dim"],
            d_out=cfg["emb_dim"],
            context_length=cfg["context_length"],
            num_heads=cfg["n_heads"],
            dropout=cfg["drop_rate"],
            qkv_bias=cfg["qkv_bias"])
        self.ff = FeedForward(cfg)
        self.norm1 = LayerNorm(cfg["emb_dim"])
        self.norm2 = LayerNorm(cfg["emb_dim"])
        self.drop_shortcut = nn.Dropout(cfg["drop_rate"])

    def forward(self, x):
        x = self.sublayer(x, self.att, self.norm1)
        x = self.sublayer(x, self.ff, self.norm2)
        return x

    def sublayer(self, x, f, norm):
        """One of the block's two halves: attention or feed-forward."""
        if self.norm == "pre_layernorm":
            out = self.drop_shortcut(f(norm(x)))
            return out + x if self.shortcut else out  # add the input back
        out = self.drop_shortcut(f(x))
        if self.shortcut:
            out = out + x
        return norm(out) if self.norm == "post_layernorm" else out


class GPTModel(nn.Module):
    def __init__(self, cfg, shortcut=True, norm="pre_layernorm"):
        super().__init__()
        check_norm(norm)
        self.norm = norm
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        self.trf_blocks = nn.Sequential(
            *[TransformerBlock(cfg, shortcut, norm) for _ in range(cfg["n_layers"])])
        self.final_norm = LayerNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)

    def forward(self, in_idx):
        seq_len = in_idx.shape[1]
        tok_embeds = self.tok_emb(in_idx)
        pos_embeds = self.pos_emb(torch.arange(seq_len, device=in_idx.device))
        x = self.drop_emb(tok_embeds + pos_embeds)
        x = self.trf_blocks(x)
        if self.norm != "none":
            x = self.final_norm(x)
        return self.out_head(x)


def token_ids(n_tokens, vocab_size, device=None):
    """Input ids (1, n_tokens) and the next-token targets (1, n_tokens)."""
    positions = torch.arange(n_tokens, device=device)
    return (positions % vocab_size).unsqueeze(0), ((positions + 1) % vocab_size).unsqueeze(0)


def token_cosine(block_output):
    """Mean cosine similarity between distinct tokens' vectors, in float64:
    1 when every token is the same vector (token collapse)."""
    tokens = block_output.reshape(-1, block_output.shape[-1]).double()
    unit = tokens / torch.linalg.vector_norm(tokens, dim=1, keepdim=True)
    cosines = unit @ unit.T
    n = tokens.shape[0]
    return (cosines.sum() - cosines.diagonal().sum()) / (n * (n - 1))


class GPTFamily(Family):
    """The book's GPT through the measurement contract: `depth` is the
    number of blocks, `norm` the norm placement, `options` the model config
    (core/families/gpt.py's MODEL_KEYS)."""

    name = NAME
    mode = "eval"

    def build(self, depth, shortcut, norm, options):
        cfg = gpt_config(depth, options["emb_dim"], options["n_heads"], options["vocab_size"],
                         options["context_length"], options["qkv_bias"])
        check_tokens(options["n_tokens"], options["context_length"])
        model = GPTModel(cfg, shortcut, norm)
        ids, targets = token_ids(options["n_tokens"], options["vocab_size"])

        def loss_fn(logits):
            return F.cross_entropy(logits.flatten(0, 1), targets.to(logits.device).flatten())

        return model, (ids,), loss_fn

    def redraw(self, model):
        """Draw a GPTModel's weights again, as GPTModel(cfg) draws them: its
        embeddings and linear layers, each reset in the order the model
        creates them (its LayerNorms draw nothing, and no cell changes them)."""
        for module in model.modules():
            if isinstance(module, nn.Embedding | nn.Linear):
                module.reset_parameters()

    def layer_of(self, name, depth):
        if name.startswith("trf_blocks."):
            return int(name.split(".")[1])
        if name.startswith(("tok_emb.", "pos_emb.")):
            return -1
        return depth

    def watch(self, model, depth):
        """The residual stream leaving the embeddings (layer -1) and each
        block, the logits (layer `depth`), and the token collapse of the last
        block's output."""
        streams = {}

        def keep(layer):
            def hook(module, inputs, output):
                streams[layer] = output
            return hook

        model.drop_emb.register_forward_hook(keep(-1))
        for i, block in enumerate(model.trf_blocks):
            block.register_forward_hook(keep(i))

        def seen(logits):
            streams[depth] = logits
            return ({layer: rms(out) for layer, out in streams.items()},
                    {"token_cosine": token_cosine(streams[depth - 1])})

        return seen
