"""Reading and checking the sweep's config.

Snakemake's validate() checks the config against the JSON schema and fills in
defaults; when it refuses, the message is rewritten so that it names the key,
the bad value and what is allowed, in one line a person can act on.
"""

import difflib
import math
import re

import jsonschema
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from shortcutbench.core.devices import expand_devices


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
        return f"{error.message}: add it to the config (see config/config.yaml)."
    top = schema["properties"].get(error.absolute_path[0], {}) if error.absolute_path else {}
    description = error.schema.get("description") or top.get("description")
    hint = f" ({description.strip()})" if description else ""
    return f"config key {key}: {error.message}{hint}."


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
    return sorted(strict(schema).iter_errors(config),
                  key=lambda e: (list(map(str, e.absolute_path)), e.message))


def load_schema(path):
    with open(path) as f:
        return yaml.safe_load(f)


def validate_config(config, schema_path):
    """Validate `config` in place (defaults filled in) and return the sweep's
    normalised form, with 'auto' devices expanded.  Raises ConfigError."""
    schema = load_schema(schema_path)
    if not isinstance(config, dict):
        raise ConfigError(f"the config must be a mapping of keys to values, not {type(config).__name__}.")
    errors = _errors(config, schema)
    if errors:
        lines = "\n  ".join(_explain(e, schema) for e in errors)
        raise ConfigError(f"Invalid config; nothing was run.\n  {lines}\n"
                          f"The schema is {schema_path}.")
    validate(config, schema_path, set_default=True)
    sweep = dict(config)
    sweep["devices"] = expand_devices(config["devices"])
    sweep["studies"] = {
        name: {**axes, **({"devices": expand_devices(axes["devices"])} if "devices" in axes else {})}
        for name, axes in config["studies"].items()
    }
    return sweep
