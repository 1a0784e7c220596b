"""Reading and checking the sweep's config.

Snakemake's validate() checks the config against the JSON schema and fills in
defaults; when it refuses, the message is rewritten so that it names the key,
the bad value and what is allowed, in one line a person can act on.
"""

import difflib

import jsonschema
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from shortcutbench.devices import expand_devices


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
        known = sorted(schema["properties"])
        lines = []
        for key in sorted(set(error.instance) - set(known)):
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed keys: {', '.join(known)}."
            lines.append(f"unknown config key {key!r}: {hint}")
        return "\n  ".join(lines)
    if error.validator == "required":
        return f"{error.message}: add it to the config (see config/config.yaml)."
    subschema = schema["properties"].get(error.absolute_path[0], {}) if error.absolute_path else {}
    hint = f" ({subschema['description'].strip()})" if "description" in subschema else ""
    return f"config key {key}: {error.message}{hint}."


def _errors(config, schema):
    validator_class = jsonschema.validators.validator_for(schema)
    return sorted(validator_class(schema).iter_errors(config),
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
