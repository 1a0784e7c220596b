"""Reading and checking the sweep's config.

Snakemake's validate() checks the config against the JSON schema and fills in
defaults; when it refuses, the message is rewritten so that it names the key,
the bad value and what is allowed, in one line a person can act on.

Values typed on the command line (`--config depths=[1,2]`) reach us as text:
Snakemake reads a list's items as strings (snakemake#2099).  Those values, and
only those (a config file's "5" stays an error), are converted by the
schema's types before the config is checked.
"""

import copy
import difflib
import math
import re

import jsonschema
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from shortcutbench.core import families
from shortcutbench.core.devices import expand_devices
from shortcutbench.core.records import BRANCH_RULE, branch_label


class ConfigError(WorkflowError):
    pass


def _key_path(error):
    path = ""
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


def _explain(error, schema):
    """One line: the key, what is wrong, what is allowed."""
    key = _key_path(error)
    if error.validator == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        where = f" in {key}" if error.absolute_path else ""
        lines = []
        for unknown in sorted(set(error.instance) - set(known), key=repr):
            close = difflib.get_close_matches(str(unknown), known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed keys: {', '.join(known)}."
            lines.append(f"unknown config key {unknown!r}{where}: {hint}")
        return "\n  ".join(lines)
    if error.validator == "required":
        return f"config key {key}: {error.message}; add it to the config."
    if error.validator == "not" and "propertyNames" in error.relative_schema_path:
        return (f"config key {key}: {error.instance!r} is the sweep's (each cell's own); leave "
                f"it out of {key}.")
    description = error.schema.get("description") or _nearest_description(
        schema, list(error.absolute_path))
    hint = f" ({description.strip()})" if description else ""
    return f"config key {key}: {error.message}{hint}."


def _nearest_description(schema, path):
    """The description of the deepest key on `path` that has one, a whole
    section's only where the mistake is the section itself: a key inside it
    is explained by its own words or the message alone."""
    found = None
    for depth in range(1, len(path) + 1):
        node = _schema_at(schema, path[:depth])
        section = "properties" in node or node.get("type") == "object"
        if node.get("description") and (depth == len(path) or not section):
            found = node["description"]
    return found


def _explanations(errors, schema):
    """One line per mistake: the top-level family's missing axes (the
    schema's if/then) in one line, every other error in its own."""
    missing = [e.message.split("'")[1] for e in errors
               if e.validator == "required" and not e.absolute_path]
    lines = [_explain(e, schema) for e in errors
             if not (e.validator == "required" and not e.absolute_path)]
    if missing:
        names = " and ".join(", ".join(repr(m) for m in missing).rsplit(", ", 1))
        verb = "is" if len(missing) == 1 else "are"
        top = families.top_level_family()
        lines.insert(0, f"{names} {verb} required: {top}, the family whose axes are the "
                        f"config's top level (models lists it, as it does by default), is "
                        f"swept over them; add {'it' if len(missing) == 1 else 'them'} to the "
                        f"config (see config/config.yaml), or leave {top} out of models.")
    return lines


def _is_integer(checker, value):
    # JSON schema counts 5.0 as an integer; a depth or seed of 5.0 would end up
    # in file names as "5.0", so only Python ints (not bools) count here.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(checker, value):
    # NaN passes every minimum and maximum; it is never a meaningful setting.
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and not (isinstance(value, float) and math.isnan(value)))


def _full_pattern(validator, pattern, instance, schema):
    # jsonschema uses re.search, where "$" also matches before a final newline
    # ("cpu\n" would pass "^cpu$"); the whole string must match.
    if validator.is_type(instance, "string") and not re.fullmatch(pattern, instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def _errors(config, schema):
    base = jsonschema.validators.validator_for(schema)
    strict = jsonschema.validators.extend(
        base, {"pattern": _full_pattern},
        type_checker=base.TYPE_CHECKER.redefine_many(
            {"integer": _is_integer, "number": _is_number}))
    errors = list(strict(schema).iter_errors(config))
    # An entry whose name is refused needs no further message about its
    # content: one message per mistake.
    refused = {(*e.absolute_path, e.instance) for e in errors
               if "propertyNames" in e.relative_schema_path}
    errors = [e for e in errors
              if not any(tuple(e.absolute_path)[:len(r)] == r for r in refused)]
    return sorted(errors, key=lambda e: (list(map(str, e.absolute_path)), e.message))


COMMAND_LINE_HINT = ("Values given with --config are text, converted by the schema's types: "
                     "write lists as depths=[1,2], booleans as true or false.")


def _schema_at(schema, path):
    """The schema node that governs the value at `path` (keys and indices)."""
    node = schema
    for part in path:
        if isinstance(part, int):
            node = node.get("items", {})
        elif part in node.get("properties", {}):
            node = node["properties"][part]
        else:
            extra = node.get("additionalProperties")
            node = extra if isinstance(extra, dict) else {}
    return node


def _list_from_text(text, path):
    """'[1, 2]' from --config as a list; a malformed one refused, naming the key."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        key = ".".join(map(str, path))
        raise ConfigError(f"config key {key}: --config gave {text!r}, which is not a list; "
                          f"write it as {key}='[1, 2, 3]', quoted for the shell") from None


def _scalar_from_text(text, node):
    """`text` as the schema's scalar type, or `text` unchanged if it is not one."""
    kinds = [node["type"]] if "type" in node else [n.get("type") for n in node.get("anyOf", [])]
    stripped = text.strip()
    if "integer" in kinds and re.fullmatch(r"[+-]?[0-9]+", stripped):
        return int(stripped)
    if "number" in kinds:
        try:
            value = float(stripped)
        except ValueError:
            pass
        else:
            if math.isfinite(value):
                return int(value) if value.is_integer() and "integer" in kinds else value
    if "boolean" in kinds and stripped.lower() in ("true", "false"):
        return stripped.lower() == "true"
    return text


def coerce_command_line(config, schema, file_config):
    """Convert the values of `config` that did not come from a config file
    (they differ from `file_config`, the files' merged content) from text to
    the schema's types: '[1, 2]' -> [1, 2], 'true' -> True, a single
    'cpu' for a list key -> ['cpu'].  Returns a new config."""

    def walk(value, node, path, original):
        if value == original:
            return value
        if isinstance(value, dict):
            originals = original if isinstance(original, dict) else {}
            return {key: walk(item, _schema_at(node, [key]), path + [key], originals.get(key))
                    for key, item in value.items()}
        if node.get("type") == "array":
            if isinstance(value, str):
                parsed = _list_from_text(value, path) if value.strip().startswith("[") else None
                value = parsed if isinstance(parsed, list) else [value]
            elif not isinstance(value, list):
                value = [value]
            items = node.get("items", {})
            return [_scalar_from_text(item, items) if isinstance(item, str) else item
                    for item in value]
        if isinstance(value, str):
            return _scalar_from_text(value, node)
        return value

    return walk(config, schema, [], file_config)


_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml(f):
    """YAML's safe subset, parsed by libyaml where PyYAML has it: the same
    data, ~8x faster than the pure-Python parser (a config listing many
    seeds, the schema at every snakemake start)."""
    return yaml.load(f, Loader=_SAFE_LOADER)


class _OnceEachLoader(_SAFE_LOADER):
    """YAML's safe subset, refusing a key given twice in one mapping: YAML
    keeps the last silently, so one of the two sweeps would not run."""

    def construct_mapping(self, node, deep=False):
        lines = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # '<<: *anchor' merges, not a key
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str | int | float | bool):
                continue  # not a config key: the schema refuses it
            if key in lines:
                raise ConfigError(f"key {key!r} is given twice, on lines {lines[key]} and "
                                  f"{line}; YAML would keep only the second: give it once")
            lines[key] = line
        return super().construct_mapping(node, deep)


def read_config_files(paths):
    """The config files' content, merged in order as Snakemake merges them."""
    from snakemake.utils import update_config

    merged = {}
    for path in paths:
        with open(path) as f:
            try:
                content = yaml.load(f, Loader=_OnceEachLoader)
            except ConfigError as error:
                raise ConfigError(f"config file {path}: {error}") from None
        update_config(merged, content or {})
    return merged


def load_schema(path):
    with open(path) as f:
        return _read_yaml(f)


def validate_config(config, schema_path, file_config=None):
    """Validate `config` in place (defaults filled in) and return the sweep's
    normalised form, with 'auto' devices expanded.  Raises ConfigError.

    file_config: what the config files alone hold; the rest of `config` came
    from --config and is converted from text first (coerce_command_line).
    None: all of it came from files (or from Python)."""
    schema = load_schema(schema_path)
    if not isinstance(config, dict):
        raise ConfigError("the config must be a mapping of keys to values, not "
                          f"{type(config).__name__}.")
    typed_on_command_line = models_typed = False
    if file_config is not None:
        coerced = copy.deepcopy(coerce_command_line(config, schema, file_config))
        typed_on_command_line = coerced != file_config
        models_typed = "models" in coerced and coerced["models"] != file_config.get("models")
        config.clear()
        config.update(coerced)
    errors = _errors(config, schema)
    if errors:
        lines = "\n  ".join(_explanations(errors, schema))
        hint = f"\n{COMMAND_LINE_HINT}" if typed_on_command_line else ""
        raise ConfigError(f"Invalid config; nothing was run.\n  {lines}\n"
                          f"The schema is {schema_path}.{hint}")
    validate(config, schema_path, set_default=True)
    notes = _without_the_top_levels_sweeps(config) if models_typed else []
    problem = family_problem(config)
    if problem:
        raise ConfigError(f"Invalid config; nothing was run.\n  config key {problem}\n"
                          f"The schema is {schema_path}.")
    sweep = dict(config)
    sweep["devices"] = expand_devices(config["devices"])
    sweep["studies"] = {
        name: {**axes,
               **({"devices": expand_devices(axes["devices"])} if "devices" in axes else {})}
        for name, axes in config["studies"].items()
    }
    for section in families.shipped_sections():
        if "devices" in config.get(section, {}):
            sweep[section] = {**config[section],
                              "devices": expand_devices(config[section]["devices"])}
    sweep["families"] = {
        name: {**family, **({"devices": expand_devices(family["devices"])}
                            if "devices" in family else {})}
        for name, family in config["families"].items()
    }
    sweep["notes"] = notes
    return sweep


# The top-level family's further sweeps (the main sweep with some axes
# replaced, and training runs), which run only where `models` lists it.
TOP_LEVEL_SWEEPS = {"studies": "the studies", "training": "the training runs"}


def _top_level_sweeps_asked(config):
    """The keys of TOP_LEVEL_SWEEPS the config asks to run."""
    return [key for key in TOP_LEVEL_SWEEPS
            if config.get(key) and config[key].get("enabled", True)]


def _without_the_top_levels_sweeps(config):
    """`models` typed on the command line without the top-level family: the
    config file's studies and training, its further sweeps, are not run
    (--config cannot remove a key).  Notes saying so; in a config file the
    same is an error."""
    top = families.top_level_family()
    if top in config["models"]:
        return []
    notes, models = [], f"models=[{','.join(config['models'])}]"
    asked = _top_level_sweeps_asked(config)
    if "studies" in asked:
        notes.append(f"{models} leaves out {top}: the config file's studies "
                     f"({', '.join(sorted(config['studies']))}), further sweeps of {top}, "
                     f"are not run")
        config["studies"] = {}
    if "training" in asked:
        notes.append(f"{models} leaves out {top}: the config file's training "
                     f"runs, further sweeps of {top}, are not run")
        config["training"] = {**config["training"], "enabled": False}
    return notes


# What builds a family of the user's own: exactly one of these keys.
BUILDERS = ("factory", "transformers", "timm")


def _builder_problem(name, family):
    """A family's section names one builder, and a library its depth key."""
    named = [key for key in BUILDERS if key in family]
    if len(named) != 1:
        which = " and ".join(named) if named else "none of them"
        return (f"families.{name}: name exactly one of factory (module:function), "
                f"transformers (a model class) or timm (a model name); it has {which}")
    if named[0] != "factory" and "depth_key" not in family:
        return (f"families.{name}.depth_key: a {named[0]} model needs the argument its depth "
                f"sets, e.g. depth_key: n_layer (gpt2), num_hidden_layers (Llama, BERT, ViT), "
                f"layers (timm's resnet18, with stages: 4) or depths (convnext, with stages: 4)")
    extra = [key for key in ("depth_key", "stages", "inputs", "without_norms") if key in family
             and named[0] == "factory"] + (["stages"] if "stages" in family
                                           and named[0] == "transformers" else [])
    if extra:
        who = "a timm model" if extra[0] == "stages" else "a library model (transformers or timm)"
        return f"families.{name}.{extra[0]}: only {who} takes {extra[0]}; remove it"
    return None


def _laws_problem(name, family):
    """A family's `laws` can be measured by its sweep: xiong's param is a
    regular expression, and each law's cells are swept."""
    laws = family.get("laws", {})
    if laws and True not in family.get("shortcut", [True]):
        law = sorted(laws)[0]
        return (f"families.{name}.laws.{law}: the law is about the network with its shortcuts, "
                f"and families.{name}.shortcut has no true; add true to it, or remove the law")
    if "xiong" in laws:
        try:
            re.compile(laws["xiong"]["param"])
        except re.error as error:
            return (f"families.{name}.laws.xiong.param: {laws['xiong']['param']!r} is not a "
                    f"regular expression ({error}); write one that matches the whole name of "
                    f"each block's second FFN weight, e.g. "
                    f"'encoder\\.layer\\.\\d+\\.output\\.dense\\.weight' (BERT's)")
    if laws.get("branch_scale"):
        scales = {branch_label(x) for x in family.get("branch_scales", [1])}
        lacking = [x for x in ("1", BRANCH_RULE) if x not in scales]
        if lacking:
            return (f"families.{name}.laws.branch_scale: the law compares alpha = 1 with alpha = "
                    f"{BRANCH_RULE}, and families.{name}.branch_scales has no "
                    f"{' and no '.join(repr(x) for x in lacking)}; set branch_scales: "
                    f"[1, \"{BRANCH_RULE}\"], or remove the law")
    return None


def family_problem(config):
    """What the schema cannot check of the families: 'key: what is wrong
    and the fix', or None.  A section is checked whenever it is there, so
    that a mistake shows before its family is added to `models`."""
    for name in config["models"]:
        if name not in families.SHIPPED and name not in config["families"]:
            return (f"models: {name!r} is neither a shipped family ({', '.join(families.SHIPPED)})"
                    f" nor one of your own; describe it under families.{name} (factory, depths, "
                    f"seeds, blocks), or fix the name")
    for name in config["families"]:
        if name in families.SHIPPED:
            return (f"families.{name}: {name!r} is the name of a shipped family "
                    f"({', '.join(families.SHIPPED)}); give your family another name")
    top = families.top_level_family()
    if top not in config["models"]:
        asked = _top_level_sweeps_asked(config)
        if asked:
            return (f"{asked[0]}: {TOP_LEVEL_SWEEPS[asked[0]]} are further sweeps of {top}, "
                    f"the family whose axes are the config's top level; add {top} to models, "
                    f"or remove {asked[0]}")
    for spec in families.SPECS.values():  # what the schema cannot check of a section
        if spec.check is not None and spec.section in config:
            try:
                spec.check(config[spec.section])
            except ValueError as error:
                return f"{spec.section}.{error}"
    for name, family in config["families"].items():
        problem = _builder_problem(name, family) or _laws_problem(name, family)
        if problem:
            return problem
        if "blocks" not in family:
            continue
        try:
            pattern = re.compile(family["blocks"])
        except re.error as error:
            return (f"families.{name}.blocks: {family['blocks']!r} is not a regular expression "
                    f"({error}); write one whose first group is the block's number, e.g. "
                    f"'blocks\\.(\\d+)\\.'")
        if pattern.groups < 1:
            return (f"families.{name}.blocks: {family['blocks']!r} has no group; put the "
                    f"block's number in parentheses, e.g. 'blocks\\.(\\d+)\\.'")
    return None
