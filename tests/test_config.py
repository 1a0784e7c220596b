"""Bad input is refused before any job runs, naming the key and the fix."""

import copy

import pytest
import yaml
from conftest import REPO, SMALL_CONFIG, snakemake

from shortcutbench.core.config import ConfigError, read_config_files, validate_config

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def check(config):
    return validate_config(copy.deepcopy(config), str(SCHEMA))


def test_the_default_config_is_valid():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    sweep = check(config)
    assert "auto" not in sweep["devices"] and "cpu" in sweep["devices"]
    # The book's own case is in the default sweep.
    assert 5 in config["depths"] and 3 in config["widths"] and 123 in config["seeds"]
    assert set(config["shortcut"]) == {False, True}
    assert max(config["depths"]) >= 64 and len(config["seeds"]) >= 10
    assert any(w > 3 for w in config["widths"])


def test_defaults_are_filled_in():
    sweep = check(SMALL_CONFIG)
    assert sweep["dtypes"] == ["float32"] and sweep["seeds_per_job"] == 100
    assert sweep["healthy_band"] == 2 and sweep["branch_scales"] == [1]


BAD = {
    "a depth of 0": ({"depths": [0, 5]}, ["depths[0]", "minimum of 1"]),
    "a non-integer depth": ({"depths": [2.5]}, ["depths[0]", "not of type 'integer'"]),
    "a depth as text": ({"depths": ["five"]}, ["depths[0]", "integer"]),
    "an unknown device": ({"devices": ["tpu9"]}, ["devices[0]", "'tpu9'", "cuda:N"]),
    "an unknown activation": ({"activations": ["swish"]}, ["activations[0]", "'swish'",
                                                           "gelu_tanh"]),
    "a misspelt key": ({"depht": [5]}, ["'depht'", "did you mean 'depths'"]),
    "an empty list": ({"seeds": []}, ["seeds", "should be non-empty"]),
    "a repeated value": ({"widths": [3, 3]}, ["widths", "non-unique"]),
    "a flag as text": ({"shortcut": ["yes"]}, ["shortcut[0]", "boolean"]),
    "a negative seed": ({"seeds": [-1]}, ["seeds[0]", "minimum of 0"]),
    "a scalar for a list": ({"widths": 3}, ["widths", "array"]),
    "an unknown dtype": ({"dtypes": ["float8"]}, ["dtypes[0]", "float32"]),
    "zero seeds per job": ({"seeds_per_job": 0}, ["seeds_per_job", "minimum of 1"]),
    "a branch scale of 0": ({"branch_scales": [0]}, ["branch_scales[0]", "alpha"]),
    "an unknown branch rule": ({"branch_scales": ["1/depth"]}, ["branch_scales[0]",
                                                                "1/sqrt(depth)"]),
    "a band of zero decades": ({"healthy_band": 0}, ["healthy_band", "decades",
                                                     "less than or equal to the minimum of 0"]),
}


@pytest.mark.parametrize("change, words", BAD.values(), ids=BAD.keys())
def test_bad_config_is_refused_naming_key_and_allowed_form(change, words):
    with pytest.raises(ConfigError) as error:
        check({**SMALL_CONFIG, **change})
    for word in words:
        assert word in str(error.value)


def test_a_missing_required_key_is_named():
    config = {k: v for k, v in SMALL_CONFIG.items() if k != "widths"}
    with pytest.raises(ConfigError, match="'widths' is required: mlp, the family whose axes"):
        check(config)


def test_the_mlps_keys_are_required_only_with_the_mlp():
    config = {k: v for k, v in SMALL_CONFIG.items() if k not in ("depths", "widths", "seeds")}
    with pytest.raises(ConfigError) as error:
        check(config)  # models defaults to [mlp]
    message = str(error.value)
    assert "'depths', 'seeds' and 'widths' are required" in message
    assert message.count("required") == 1  # one message for one mistake
    assert "or leave mlp out of models" in message
    # no MLP: none of them needed (training is the MLP's, so it goes too)
    check({**{k: v for k, v in config.items() if k != "training"}, "models": ["resnet"]})


def test_every_error_is_reported_at_once():
    with pytest.raises(ConfigError) as error:
        check({**SMALL_CONFIG, "depths": [0], "devices": ["tpu9"]})
    assert "depths[0]" in str(error.value) and "devices[0]" in str(error.value)


def test_a_key_inside_a_section_is_explained_by_its_own_words_not_the_sections():
    training = {"depths": [2], "widths": [3], "seeds": [1], "norms": ["none"]}
    with pytest.raises(ConfigError) as error:
        check({**SMALL_CONFIG, "training": {**training, "optimizer": "rmsprop"}})
    assert "config key training.optimizer: 'rmsprop' is not one of ['sgd', 'adam'].\n" \
        in str(error.value)
    with pytest.raises(ConfigError) as error:
        check({**SMALL_CONFIG, "models": ["mlp", "gpt"], "gpt": {"blocks": [0]}})
    assert "gpt.blocks[0]: 0 is less than the minimum of 1 (numbers of TransformerBlocks" \
        in str(error.value)
    # the section itself wrong: the section's words
    with pytest.raises(ConfigError, match=r"config key gpt: 5 is not of type 'object' \(the GPT"):
        check({**SMALL_CONFIG, "models": ["mlp", "gpt"], "gpt": 5})


def test_a_malformed_list_on_the_command_line_names_the_key():
    file_config = copy.deepcopy(SMALL_CONFIG)
    with pytest.raises(ConfigError, match=r"config key depths: --config gave '\[1,2', which "
                                          r"is not a list; write it as depths='\[1, 2, 3\]'"):
        validate_config({**copy.deepcopy(SMALL_CONFIG), "depths": "[1,2"}, str(SCHEMA),
                        file_config=file_config)


def test_a_key_given_twice_in_a_config_file_is_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("depths: [1, 5]\nwidths: [3]\nresnet:\n  depths: [8]\ndepths: [64]\n")
    with pytest.raises(ConfigError, match=rf"config file {path}: key 'depths' is given twice, "
                                          r"on lines 1 and 5"):
        read_config_files([str(path)])
    path.write_text("depths: [1, 5]\nresnet: {depths: [8], batch_size: 4, depths: [20]}\n")
    with pytest.raises(ConfigError, match="key 'depths' is given twice, on lines 2 and 2"):
        read_config_files([str(path)])
    # the same key in two mappings is no repeat, nor is a YAML merge of one
    path.write_text("depths: [1, 5]\nresnet:\n  depths: [8]\n")
    assert read_config_files([str(path)]) == {"depths": [1, 5], "resnet": {"depths": [8]}}
    path.write_text("studies:\n  a: &a {inits: [xavier_uniform], depths: [2]}\n"
                    "  b: {<<: *a, depths: [4]}\n")
    assert read_config_files([str(path)])["studies"]["b"] == {"inits": ["xavier_uniform"],
                                                              "depths": [4]}


@pytest.mark.slow
def test_snakemake_refuses_a_bad_config_before_any_job(tmp_path):
    # A user config file merges over config/config.yaml, as Snakemake does.
    result = snakemake(tmp_path, {"depths": [0, 5], "devices": ["tpu9"]}, check=False)
    assert result.returncode != 0
    assert "depths[0]: 0 is less than the minimum of 1" in result.stdout
    assert "'tpu9'" in result.stdout
    assert not (tmp_path / "results").exists() and not (tmp_path / "logs").exists()


def test_the_fast_yaml_parser_reads_every_shipped_yaml_as_pyyamls_own():
    from shortcutbench.core.config import _read_yaml

    files = [*REPO.glob("config/*.yaml"), *REPO.glob("examples/*/config.yaml"),
             REPO / "workflow" / "schemas" / "config.schema.yaml"]
    assert len(files) >= 4
    for path in files:
        with open(path) as f, open(path) as g:
            assert _read_yaml(f) == yaml.safe_load(g), path
