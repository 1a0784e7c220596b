"""The architectures people ship, as families by config alone: a Hugging
Face transformers model class or a timm model, built from its config at each
depth, with no weights downloaded.

    families:
      gpt2:
        transformers: GPT2LMHeadModel       # a class of transformers
        depth_key: n_layer                  # the config key each depth sets
        options: {n_embd: 64, n_head: 4}    # the rest of its config class
        inputs: {batch: 2, tokens: 32}      # optional
        blocks: 'transformer\\.h\\.(\\d+)\\.'
      timm_resnet18:
        timm: resnet18                      # a timm model name
        depth_key: layers                   # create_model's depth argument
        stages: 4                           # a list of that many: [depth] * stages
        options: {num_classes: 10}
        inputs: {batch: 8, image_size: 32}
      gpt2_no_norm: ...                     # the same, `without_norms: true`:
                                            # every LayerNorm the identity

Each builds the model *with* its shortcuts (these libraries have no switch);
the generic shortcut switch (measuring/shortcut_switch.py) removes them for
`shortcut: false`.  The inputs are drawn after the model, from torch's
generator: token ids (labels the same ids, so a causal LM's own loss is the
next-token cross-entropy and a masked LM's the token cross-entropy) or
images (labels one class each).  The loss is the model's own where it
computes one from `labels` (losses.default_loss).

This module imports torch and never pandas, seaborn or Snakemake.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any

import torch

from shortcutbench.measuring.libraries import import_library
from shortcutbench.measuring.losses import default_loss

LIBRARIES = ("transformers", "timm")
DEFAULT_INPUTS = {"batch": 2, "tokens": 32, "image_size": 32}


class LibraryError(ValueError):
    """A library family that cannot be built; the message names the key and the fix."""


def library_of(section: dict[str, Any]) -> str | None:
    """The library a family's section names, or None (a factory of its own)."""
    return next((name for name in LIBRARIES if section.get(name)), None)


def label(section: dict[str, Any]) -> str:
    """How messages name a library family's model: 'transformers GPT2LMHeadModel'."""
    library = library_of(section)
    return f"{library} {section[library]}"


def factory(section: dict[str, Any], key: str) -> Callable:
    """build(depth, **options) -> (model, inputs, loss_fn) for a library
    family's section; `key` ("families.NAME") names it in errors."""
    library = library_of(section)
    inputs = {**DEFAULT_INPUTS, **(section.get("inputs") or {})}
    if library == "transformers":
        build = _transformers_factory(section["transformers"], section["depth_key"], inputs, key)
    else:
        build = _timm_factory(section["timm"], section["depth_key"], section.get("stages"),
                              inputs, key)
    if not section.get("without_norms"):
        return build

    def without_norms(depth, **options):
        model, *rest = build(depth, **options)
        return (remove_norms(model), *rest)

    without_norms.__name__ = build.__name__
    return without_norms


def is_norm(module: torch.nn.Module) -> bool:
    """A normalisation layer: LayerNorm, or a library's own (LlamaRMSNorm)."""
    return (isinstance(module, torch.nn.LayerNorm | torch.nn.RMSNorm)
            or type(module).__name__.endswith(("LayerNorm", "RMSNorm")))


def remove_norms(model: torch.nn.Module) -> torch.nn.Module:
    """The model with every normalisation layer replaced by the identity."""
    for name, module in list(model.named_modules()):
        if name and is_norm(module):
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child,
                    torch.nn.Identity())
    return model


def _transformers_factory(name, depth_key, inputs, key):
    transformers = import_library("transformers")
    transformers.logging.set_verbosity_error()  # small vocabularies warn of the default token ids
    model_class = getattr(transformers, name, None)
    if not (inspect.isclass(model_class) and hasattr(model_class, "config_class")):
        raise LibraryError(f"{key}.transformers: transformers {transformers.__version__} has no "
                           f"model class {name!r}; name one, e.g. GPT2LMHeadModel, "
                           f"LlamaForCausalLM, BertForMaskedLM, ViTForImageClassification")
    config_class = model_class.config_class
    own = [p for p in inspect.signature(config_class.__init__).parameters
           if p not in ("self", "kwargs") and not p.startswith("_")]
    known = set(own) | set(config_class().to_dict()) | {"attn_implementation", "num_labels"}
    base = next(c for c in config_class.__mro__ if c.__name__.lower() == "pretrainedconfig")
    specific = [key for key in own if key not in set(base().to_dict())]  # n_embd, not dtype
    if depth_key not in known:
        raise LibraryError(f"{key}.depth_key: {config_class.__name__} has no {depth_key!r}; name "
                           f"its number of layers, e.g. n_layer or num_hidden_layers")
    takes_labels = "labels" in inspect.signature(model_class.forward).parameters

    def build(depth, **options):
        unknown = sorted(set(options) - known)
        if unknown:
            close = difflib.get_close_matches(unknown[0], specific, n=3)
            hint = (f"did you mean {' or '.join(close)}?" if close else
                    f"its own keys are {', '.join(specific)}")
            raise LibraryError(f"{key}.options: {config_class.__name__} has no {unknown}; "
                               f"{hint}")
        config = config_class(**options, **{depth_key: depth})
        model = model_class(config)
        positions = _learned_positions(model, config)
        if (model_class.main_input_name != "pixel_values" and positions
                and inputs["tokens"] > positions):
            raise LibraryError(f"{key}.inputs.tokens: {inputs['tokens']} tokens are more than "
                               f"the {positions} positions of its {config_class.__name__} "
                               f"(max_position_embeddings); give fewer tokens, or more "
                               f"positions in {key}.options")
        batch = inputs["batch"]
        if model_class.main_input_name == "pixel_values":
            size = getattr(config, "image_size", inputs["image_size"])
            x = {"pixel_values": torch.randn(batch, getattr(config, "num_channels", 3), size, size)}
            if takes_labels:
                x["labels"] = torch.randint(0, config.num_labels, (batch,))
        else:
            ids = torch.randint(0, config.vocab_size, (batch, inputs["tokens"]))
            x = {model_class.main_input_name: ids}
            if takes_labels:
                x["labels"] = (torch.randint(0, config.num_labels, (batch,))
                               if "Classification" in name else ids)
        return model, x, lambda output: default_loss(output, x)

    build.__name__ = name
    return build


def _learned_positions(model, config):
    """The rows of a model's learned position table (an nn.Embedding of
    max_position_embeddings rows), or None: rotary positions take any length."""
    positions = getattr(config, "max_position_embeddings", None)
    if not isinstance(positions, int) or positions == getattr(config, "vocab_size", None):
        return None  # a table of as many rows as the vocabulary's could be either
    tables = (module for module in model.modules() if isinstance(module, torch.nn.Embedding))
    return positions if any(table.num_embeddings == positions for table in tables) else None


def _timm_factory(name, depth_key, stages, inputs, key):
    timm = import_library("timm")
    if not timm.is_model(name):
        raise LibraryError(f"{key}.timm: timm {timm.__version__} has no model {name!r}; name "
                           f"one of timm.list_models(), e.g. resnet18, resnet50, convnext_atto")

    def build(depth, **options):
        blocks = [depth] * stages if stages else depth
        try:
            model = timm.create_model(name, pretrained=False, **options, **{depth_key: blocks})
        except TypeError as error:
            if repr(depth_key) not in str(error):
                raise
            raise LibraryError(f"{key}.depth_key: timm's {name} takes no {depth_key!r} "
                               f"({error}); name its blocks per stage, e.g. layers (resnet18, "
                               f"with stages: 4) or depths (convnext_atto, with stages: "
                               f"4)") from None
        size, batch = inputs["image_size"], inputs["batch"]
        x = torch.randn(batch, model.default_cfg.get("input_size", (3,))[0], size, size)
        labels = torch.randint(0, model.num_classes, (batch,))

        def loss_fn(logits):
            return torch.nn.functional.cross_entropy(logits, labels.to(logits.device))
        return model, (x,), loss_fn

    build.__name__ = name
    return build
