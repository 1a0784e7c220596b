"""One GPT cell -> one record per parameter.

A cell is one GPTModel (config, seed, shortcut flag, norm placement) on one
device in one dtype.  Its measurement (issue 13's contract):

1. torch.manual_seed(seed) right before GPTModel(cfg); eval mode, so dropout
   is off;
2. input ids arange(n_tokens) % vocab_size as a batch of one, targets the next
   id, (arange(n_tokens) + 1) % vocab_size;
3. loss = cross_entropy(logits.flatten(0, 1), targets.flatten()), one
   backward pass;
4. per named parameter its gradient's mean |grad| and L2 norm, the RMS of the
   residual stream leaving its block, and per cell the loss and the token
   collapse statistic (mean pairwise cosine of the last block's token outputs).

`measure_gpt_cell` is the fast way, `measure_gpt_cell_reference` the plain
one (nn.Module, backward(), one .item() per number); tests/test_gpt.py checks
that they agree bit for bit, benchmarks/gpt.py times both.

This module imports torch and never pandas, seaborn or Snakemake.
"""

import math
import sys
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from shortcutbench.core.gpt import check_norm, check_tokens, gpt_config
from shortcutbench.core.records import COLUMNS
from shortcutbench.core.sweep import cells_of, gpt_cell_fields
from shortcutbench.measuring.devices import torch_device
from shortcutbench.measuring.gpt import GPTModel, layer_norm
from shortcutbench.measuring.measure import DTYPES, configure_torch
from shortcutbench.measuring.model import gelu_tanh, linear_init_bounds


@dataclass(frozen=True)
class GPTCell:
    """One GPT on one device in one dtype: the unit of measurement."""
    blocks: int
    emb_dim: int
    n_heads: int
    vocab_size: int
    context_length: int
    n_tokens: int
    seed: int
    shortcut: bool
    norm: str = "pre_layernorm"
    qkv_bias: bool = False
    device: str = "cpu"
    dtype: str = "float32"

    def config(self):
        """The book's config dict; ValueError naming the key if it is unusable."""
        cfg = gpt_config(self.blocks, self.emb_dim, self.n_heads, self.vocab_size,
                         self.context_length, self.qkv_bias)
        check_norm(self.norm)
        check_tokens(self.n_tokens, self.context_length)
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype: unknown {self.dtype!r}; use one of {', '.join(DTYPES)}")
        return cfg


def token_ids(n_tokens, vocab_size, device):
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


def layer_of(name, blocks):
    """The record's layer: the block index for trf_blocks.{i}.*, -1 for the
    embeddings, `blocks` for the final norm and the output head."""
    if name.startswith("trf_blocks."):
        return int(name.split(".")[1])
    if name.startswith(("tok_emb.", "pos_emb.")):
        return -1
    return blocks


def _cell_fields(cell):
    return {"model": "gpt", "depth": cell.blocks, "width": cell.emb_dim, "seed": cell.seed,
            "shortcut": cell.shortcut, "shortcut_scale": 1.0 if cell.shortcut else 0.0,
            "activation": "gelu_tanh", "init": "pytorch", "norm": cell.norm,
            "device": cell.device, "dtype": cell.dtype}


def measure_gpt_cell_reference(cell):
    """The plain way: seed, build the nn.Module, forward, backward(), then one
    .item() per number.  Block outputs are caught with forward hooks."""
    cfg = cell.config()
    device, dtype = torch_device(cell.device), DTYPES[cell.dtype]
    torch.manual_seed(cell.seed)
    model = GPTModel(cfg, cell.shortcut, cell.norm)
    model = model.to(device, dtype)
    model.eval()

    streams = {}  # layer -> what leaves it: embeddings (-1), each block (0..)

    def keep(layer):
        def hook(module, inputs, output):
            streams[layer] = output
        return hook

    model.drop_emb.register_forward_hook(keep(-1))
    for i, block in enumerate(model.trf_blocks):
        block.register_forward_hook(keep(i))

    ids, targets = token_ids(cell.n_tokens, cell.vocab_size, device)
    logits = model(ids)
    streams[cell.blocks] = logits
    loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
    loss.backward()

    with torch.no_grad():
        output_rms = {layer: out.double().square().mean().sqrt().item()
                      for layer, out in streams.items()}
        cosine = token_cosine(streams[cell.blocks - 1]).item()
        loss_value = loss.item()
        records = []
        for name, param in model.named_parameters():
            # A LayerNorm that is not applied gets no gradient: it is zero.
            grad = param.grad if param.grad is not None else torch.zeros_like(param)
            layer = layer_of(name, cell.blocks)
            records.append({
                **_cell_fields(cell), "layer": layer, "param": name,
                "grad_abs_mean": grad.abs().mean().item(),
                "grad_l2": torch.linalg.vector_norm(grad, dtype=torch.float64).item(),
                "output_rms": output_rms[layer],
            })
    values = [v for r in records for v in (r["grad_abs_mean"], r["grad_l2"], r["output_rms"])]
    finite = all(math.isfinite(v) for v in values + [loss_value, cosine])
    for record in records:
        record.update(loss=loss_value, token_cosine=cosine, finite=finite)
    return records


SMALL = 2 ** 14  # gradients with fewer entries are stacked for their statistics


def init_gpt_parameters(cfg):
    """{name: tensor} with the values GPTModel(cfg) draws, in its order.

    The same draws from the global generator as the modules make (Embedding:
    normal_; Linear: nn.Linear's kaiming-uniform weight, then its bias), on
    the CPU in float32, without building ~15 modules and a causal mask per
    block.  Names are GPTModel's named_parameters().
    """
    emb, hidden = cfg["emb_dim"], 4 * cfg["emb_dim"]
    parameters = {}

    def embedding(name, rows):
        parameters[name] = torch.empty(rows, emb).normal_(0.0, 1.0)

    def linear(name, n_in, n_out, bias=True):
        weight_bound, bias_bound = linear_init_bounds(n_in)
        parameters[f"{name}.weight"] = torch.empty(n_out, n_in).uniform_(-weight_bound,
                                                                        weight_bound)
        if bias:
            parameters[f"{name}.bias"] = torch.empty(n_out).uniform_(-bias_bound, bias_bound)

    def layer_norm(name):
        parameters[f"{name}.scale"] = torch.ones(emb)
        parameters[f"{name}.shift"] = torch.zeros(emb)

    embedding("tok_emb.weight", cfg["vocab_size"])
    embedding("pos_emb.weight", cfg["context_length"])
    for i in range(cfg["n_layers"]):
        block = f"trf_blocks.{i}"
        for projection in ("W_query", "W_key", "W_value"):
            linear(f"{block}.att.{projection}", emb, emb, cfg["qkv_bias"])
        linear(f"{block}.att.out_proj", emb, emb)
        linear(f"{block}.ff.layers.0", emb, hidden)
        linear(f"{block}.ff.layers.2", hidden, emb)
        layer_norm(f"{block}.norm1")
        layer_norm(f"{block}.norm2")
    layer_norm("final_norm")
    linear("out_head", emb, cfg["vocab_size"], bias=False)
    return parameters


def gpt_forward(p, ids, cfg, shortcut, norm):
    """GPTModel.forward in eval mode on plain tensors, op for op (dropout is
    the identity in eval mode, so it is left out).

    Returns the logits and the residual stream leaving the embeddings and
    every block.
    """
    n_tokens = ids.shape[1]
    n_heads, emb = cfg["n_heads"], cfg["emb_dim"]
    head_dim = emb // n_heads
    future = torch.ones(n_tokens, n_tokens, dtype=torch.bool, device=ids.device).triu(1)
    positions = torch.arange(n_tokens, device=ids.device)

    def ln(x, name):
        return layer_norm(x, p[f"{name}.scale"], p[f"{name}.shift"])

    def linear(x, name):
        return F.linear(x, p[f"{name}.weight"], p.get(f"{name}.bias"))

    def attention(x, block):
        b = x.shape[0]
        keys = linear(x, f"{block}.att.W_key")
        queries = linear(x, f"{block}.att.W_query")
        values = linear(x, f"{block}.att.W_value")
        keys = keys.view(b, n_tokens, n_heads, head_dim).transpose(1, 2)
        queries = queries.view(b, n_tokens, n_heads, head_dim).transpose(1, 2)
        values = values.view(b, n_tokens, n_heads, head_dim).transpose(1, 2)
        attn_scores = queries @ keys.transpose(2, 3)
        attn_scores.masked_fill_(future, -torch.inf)
        attn_weights = torch.softmax(attn_scores / keys.shape[-1]**0.5, dim=-1)
        context_vec = (attn_weights @ values).transpose(1, 2)
        context_vec = context_vec.contiguous().view(b, n_tokens, emb)
        return linear(context_vec, f"{block}.att.out_proj")

    def feed_forward(x, block):
        return linear(gelu_tanh(linear(x, f"{block}.ff.layers.0")), f"{block}.ff.layers.2")

    def sublayer(x, f, block, norm_name):  # TransformerBlock.sublayer
        if norm == "pre_layernorm":
            out = f(ln(x, f"{block}.{norm_name}"), block)
            return out + x if shortcut else out
        out = f(x, block)
        if shortcut:
            out = out + x
        return ln(out, f"{block}.{norm_name}") if norm == "post_layernorm" else out

    x = F.embedding(ids, p["tok_emb.weight"]) + F.embedding(positions, p["pos_emb.weight"])
    streams = [x]
    for i in range(cfg["n_layers"]):
        block = f"trf_blocks.{i}"
        x = sublayer(x, attention, block, "norm1")
        x = sublayer(x, feed_forward, block, "norm2")
        streams.append(x)
    if norm != "none":
        x = ln(x, "final_norm")
    return linear(x, "out_head"), streams


def measure_gpt_cell(cell):
    """Measure one GPT cell; returns its records, one dict per parameter.

    The same numbers as measure_gpt_cell_reference, bit for bit, with less
    overhead: the weights drawn without modules, a forward on plain tensors,
    and every statistic batched and brought to Python in one .tolist().
    Overflow or NaN is data: it shows up as inf/nan values and finite=False.
    """
    cfg = cell.config()
    device, dtype = torch_device(cell.device), DTYPES[cell.dtype]

    # Seed right before the weights are drawn (always on the CPU in float32,
    # so every device and dtype starts from the same numbers).
    torch.manual_seed(cell.seed)
    parameters = init_gpt_parameters(cfg)
    if device.type != "cpu" or dtype != torch.float32:
        parameters = {name: t.to(device, dtype) for name, t in parameters.items()}
    names = list(parameters)
    # Without norms the LayerNorms are not applied: their gradient is zero.
    used = [name for name in names
            if cell.norm != "none" or not name.endswith((".scale", ".shift"))]
    for name in used:
        parameters[name].requires_grad_()

    ids, targets = token_ids(cell.n_tokens, cell.vocab_size, device)
    logits, streams = gpt_forward(parameters, ids, cfg, cell.shortcut, cell.norm)
    loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
    grads = dict(zip(used, torch.autograd.grad(loss, [parameters[n] for n in used])))
    # The statistics need only the gradients: drop the weights (and the graph,
    # which holds on to them) first, so that the statistics' temporaries reuse
    # the weights' memory.
    loss, logits, streams = loss.detach(), logits.detach(), [s.detach() for s in streams]
    del parameters

    with torch.no_grad():
        # Small gradients (biases, norms) of one shape get their statistics
        # in one op per batch; stacking big ones would cost a copy larger than
        # the per-op overhead it saves, so they go one by one.  Every number
        # is written into one table made up front, so no small result stays
        # alive between the big temporaries (that fragments the heap: +300 MB
        # at 124M), and the table reaches Python in one .tolist().
        # order[k] is whose (mean |grad|, L2) pair comes k-th.
        order, groups = [], {}
        for name in used:
            shape = grads[name].shape
            groups.setdefault(shape if math.prod(shape) < SMALL else name, []).append(name)
        table = torch.empty(2 * len(used) + (cell.blocks + 2) + 2, dtype=torch.float64,
                            device=device)
        for group in groups.values():
            start = 2 * len(order)
            _grad_statistics([grads[n] for n in group], table[start:start + 2 * len(group)])
            order.extend(group)
        rms = table[2 * len(order):-2]
        rms[0] = _rms(streams[0].unsqueeze(0))[0]
        rms[1:-1] = _rms(torch.stack(streams[1:]))
        rms[-1] = _rms(logits.unsqueeze(0))[0]
        table[-2] = loss
        table[-1] = token_cosine(streams[-1])
        values = table.tolist()

    n_grads = 2 * len(order)
    grad_values = {name: values[2 * k:2 * k + 2] for k, name in enumerate(order)}
    output_rms = dict(zip(range(-1, cell.blocks + 1), values[n_grads:n_grads + cell.blocks + 2]))
    loss_value, cosine = values[-2:]
    finite = all(math.isfinite(v) for v in values)
    cell_fields = _cell_fields(cell)
    records = []
    for name in names:
        layer = layer_of(name, cell.blocks)
        grad_abs_mean, grad_l2 = grad_values.get(name, (0.0, 0.0))
        records.append({**cell_fields, "layer": layer, "param": name,
                        "grad_abs_mean": grad_abs_mean, "grad_l2": grad_l2,
                        "output_rms": output_rms[layer], "loss": loss_value,
                        "token_cosine": cosine, "finite": finite})
    return records


def _grad_statistics(grads, out):
    """Write (mean |grad|, L2 norm) per gradient, interleaved, into `out`, for
    gradients of one shape.  The mean in the model's dtype (the book's
    statistic), the norm in float64, where a finite gradient's square cannot
    overflow."""
    if len(grads) == 1:
        out[0] = grads[0].abs().mean()
        out[1] = torch.linalg.vector_norm(grads[0], dtype=torch.float64)
        return
    stacked = torch.stack(grads)
    dims = tuple(range(1, stacked.dim()))
    out[0::2] = stacked.abs().mean(dim=dims)
    out[1::2] = torch.linalg.vector_norm(stacked, dim=dims, dtype=torch.float64)


def _rms(stacked):
    """RMS in float64 of each tensor along the first dimension."""
    return stacked.double().square().mean(dim=tuple(range(1, stacked.dim()))).sqrt()


# The tidy table's columns the GPT family has no value for: the MLP's
# bias and stream-alignment statistics, and its scalar output.
_MLP_ONLY = {"bias_grad_abs_mean": math.nan, "grad_stream_cos": math.nan,
             "output": math.nan}


def as_records(records):
    """measure_gpt_cell's records -> rows of records.COLUMNS (in its order):
    branch_scale "1", NaN where the GPT has no value."""
    return [{column: record.get(column, _MLP_ONLY.get(column, "1"))
             for column in COLUMNS} for record in records]


def measure_gpt_chunk(params, progress=sys.stderr):
    """Measure every cell of a GPT chunk (sweep.GPTChunk.params()) in this
    process; returns their records as rows of records.COLUMNS, in cells_of
    order, each cell's in named_parameters() order."""
    configure_torch()
    cells = [GPTCell(**gpt_cell_fields(cell, params)) for cell in cells_of(params)]
    records = []
    started = time.perf_counter()
    step = max(1, len(cells) // 10)
    for n, cell in enumerate(cells, 1):
        records.extend(as_records(measure_gpt_cell(cell)))
        if progress and (n % step == 0 or n == len(cells)):
            print(f"measured {n}/{len(cells)} GPT cells in "
                  f"{time.perf_counter() - started:.1f} s", file=progress, flush=True)
    return records
