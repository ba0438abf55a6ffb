"""SystolicConfig: every validation rule with its exact message, exception types, JSON, ports."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tpesim.registry import ENGINES

from tpesim.config import Port
from tpesim.engines.systolic import SystolicConfig
from tpesim.errors import ConfigError, ConfigTypeError, TpesimError


@pytest.mark.parametrize(("kwargs", "exc", "message"), [
    ({"rows": 0}, ConfigError, "rows must be a positive integer, not 0"),
    ({"rows": -3}, ConfigError, "rows must be a positive integer, not -3"),
    ({"rows": 513}, ConfigError, "rows must be at most 512, not 513"),
    ({"rows": "4"}, ConfigTypeError, "rows must be an integer, not '4'"),
    ({"rows": 4.0}, ConfigTypeError, "rows must be an integer, not 4.0"),
    ({"rows": True}, ConfigTypeError, "rows must be an integer, not True"),
    ({"cols": 0}, ConfigError, "cols must be a positive integer, not 0"),
    ({"cols": 1000}, ConfigError, "cols must be at most 512, not 1000"),
    ({"cols": None}, ConfigTypeError, "cols must be an integer, not None"),
    ({"dataflow": "xs"}, ConfigError, "dataflow must be one of 'os', 'ws', 'is', not 'xs'"),
    ({"dataflow": "OS"}, ConfigError, "dataflow must be one of 'os', 'ws', 'is', not 'OS'"),
    ({"double_buffer": True}, ConfigError,
     "double_buffer must be False for dataflow 'os' (it double-buffers the stationary operand of "
     "'ws'/'is'; OS already has a shadow result bank), not True"),
    ({"dataflow": "ws", "double_buffer": 1}, ConfigTypeError, "double_buffer must be a bool, not 1"),
    ({"in_bits": 5}, ConfigError, "in_bits must be one of 4, 8, 16, not 5"),
    ({"in_bits": 32}, ConfigError, "in_bits must be one of 4, 8, 16, not 32"),
    ({"signed": 1}, ConfigTypeError, "signed must be a bool, not 1"),
    ({"signed": "yes"}, ConfigTypeError, "signed must be a bool, not 'yes'"),
    ({"acc_bits": 15}, ConfigError,
     "acc_bits must be an integer from 16 (2*in_bits) to 64, not 15"),
    ({"acc_bits": 65}, ConfigError,
     "acc_bits must be an integer from 16 (2*in_bits) to 64, not 65"),
    ({"in_bits": 4, "acc_bits": 7}, ConfigError,
     "acc_bits must be an integer from 8 (2*in_bits) to 64, not 7"),
    ({"in_bits": 16, "acc_bits": 31}, ConfigError,
     "acc_bits must be an integer from 32 (2*in_bits) to 64, not 31"),
    ({"signed": False, "acc_bits": 64}, ConfigError,
     "acc_bits must be an integer from 16 (2*in_bits) to 63, not 64"),
    ({"acc_bits": "32"}, ConfigTypeError, "acc_bits must be an integer, not '32'"),
    ({"acc_bits": 32.0}, ConfigTypeError, "acc_bits must be an integer, not 32.0"),
])
def test_validation_message(kwargs, exc, message):
    with pytest.raises(exc) as info:
        SystolicConfig(**kwargs)
    assert str(info.value) == message
    assert isinstance(info.value, TpesimError)
    # a wrong type is a TypeError, a wrong value a ValueError, never both
    if exc is ConfigTypeError:
        assert isinstance(info.value, TypeError) and not isinstance(info.value, ValueError)
    else:
        assert isinstance(info.value, ValueError) and not isinstance(info.value, TypeError)


@pytest.mark.parametrize("value", ["8", 8.0, True])
def test_in_bits_wrong_type_is_type_error(value):
    with pytest.raises(ConfigTypeError, match=r"^in_bits must be an integer, not "):
        SystolicConfig(in_bits=value)


@pytest.mark.parametrize(("in_bits", "signed", "acc_bits"), [
    (4, True, 8), (4, False, 63), (8, True, 16), (8, True, 64), (8, False, 16), (8, False, 63),
    (16, True, 32), (16, True, 64), (16, False, 63),
])
def test_acc_bits_limits_accepted(in_bits, signed, acc_bits):
    cfg = SystolicConfig(in_bits=in_bits, signed=signed, acc_bits=acc_bits)
    assert cfg.acc_bits == acc_bits


@pytest.mark.parametrize(("in_bits", "acc_bits"), [(4, 32), (8, 32), (16, 48)])
def test_acc_bits_default(in_bits, acc_bits):
    assert SystolicConfig(in_bits=in_bits).acc_bits == acc_bits
    assert SystolicConfig(in_bits=in_bits, signed=False).acc_bits == acc_bits


@pytest.mark.parametrize(("rows", "cols"), [(1, 1), (1, 512), (512, 1), (512, 512)])
def test_dimension_limits_accepted(rows, cols):
    cfg = SystolicConfig(rows=rows, cols=cols)
    assert (cfg.rows, cfg.cols) == (rows, cols)


def test_frozen():
    cfg = SystolicConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.rows = 4  # type: ignore[misc]


@pytest.mark.parametrize("cfg", [
    SystolicConfig(),
    SystolicConfig(rows=3, cols=17, in_bits=4, signed=False, acc_bits=9),
    SystolicConfig(rows=512, cols=1, in_bits=16, acc_bits=64),
])
def test_json_round_trip(cfg):
    text = cfg.to_json()
    assert json.loads(text) == cfg.to_dict()
    back = SystolicConfig.from_json(text)
    assert back == cfg and hash(back) == hash(cfg)
    assert SystolicConfig.from_dict(cfg.to_dict()) == cfg


def test_json_has_resolved_acc_bits():
    assert json.loads(SystolicConfig(in_bits=16).to_json())["acc_bits"] == 48


def test_from_dict_unknown_field():
    with pytest.raises(ConfigError) as info:
        SystolicConfig.from_dict({"rows": 4, "depth": 3})
    assert str(info.value) == ("SystolicConfig has no field 'depth' "
                               "(fields: acc_bits, cols, dataflow, double_buffer, in_bits, rows, signed)")


def test_from_json_validates():
    with pytest.raises(ConfigError, match=r"^rows must be a positive integer, not 0$"):
        SystolicConfig.from_json('{"rows": 0}')


@pytest.mark.parametrize(("rows", "cols", "in_bits", "acc_bits"),
                         [(1, 1, 4, 8), (4, 3, 8, 32), (16, 8, 16, 48), (2, 5, 8, 64)])
def test_ports(rows, cols, in_bits, acc_bits):
    cfg = SystolicConfig(rows=rows, cols=cols, in_bits=in_bits, acc_bits=acc_bits)
    ports = {p.name: p for p in cfg.ports()}
    assert list(ports) == ["in_valid", "in_ready", "in_a", "in_b", "in_last",
                           "out_valid", "out_ready", "out_c", "out_last"]
    assert all(isinstance(p, Port) for p in ports.values())
    expect = {
        "in_valid": ("in", 1), "in_ready": ("out", 1),
        "in_a": ("in", rows * in_bits), "in_b": ("in", cols * in_bits), "in_last": ("in", 1),
        "out_valid": ("out", 1), "out_ready": ("in", 1),
        "out_c": ("out", cols * acc_bits), "out_last": ("out", 1),
    }
    assert {n: (p.direction, p.width) for n, p in ports.items()} == expect


@pytest.mark.parametrize(("in_bits", "signed", "lo", "hi"), [
    (4, True, -8, 7), (4, False, 0, 15), (8, True, -128, 127), (8, False, 0, 255),
    (16, True, -32768, 32767), (16, False, 0, 65535),
])
def test_in_range(in_bits, signed, lo, hi):
    assert SystolicConfig(in_bits=in_bits, signed=signed).in_range == (lo, hi)


def test_name():
    assert SystolicConfig(rows=4, cols=2).name == "systolic_os_4x2_s8_acc32"
    assert SystolicConfig(in_bits=16, signed=False, acc_bits=40).name == "systolic_os_8x8_u16_acc40"


@pytest.mark.parametrize("cfg", [SystolicConfig(), SystolicConfig(rows=3, cols=5, dataflow="ws",
                                                                  double_buffer=True, in_bits=4,
                                                                  signed=False, acc_bits=20)])
def test_toml_round_trip(cfg):
    assert SystolicConfig.from_toml(cfg.to_toml()) == cfg


def test_toml_errors_are_one_line():
    with pytest.raises(ConfigError, match=r"^rows must be a positive integer, not 0$"):
        SystolicConfig.from_toml("rows = 0\n")
    with pytest.raises(ConfigError, match=r"^SystolicConfig TOML is malformed: "):
        SystolicConfig.from_toml("rows = \n")


# -- config files: every malformed input is a one-line typed error (issue 7) -----------------------
@pytest.mark.parametrize(("text", "exc", "message"), [
    ("", "ConfigError", "engine config JSON must not be empty"),
    ("null", "ConfigTypeError", "engine config JSON must be an object, not NoneType"),
    ("5", "ConfigTypeError", "engine config JSON must be an object, not int"),
    ("[]", "ConfigTypeError", "engine config JSON must be an object, not list"),
    ('{"engine": "systolic", "rows": 2, "rows": 3}', "ConfigError",
     "config JSON has the key 'rows' twice"),
    ('{"engine": "warp"}', "ConfigError",
     f"engine must be one of {', '.join(repr(e) for e in sorted(ENGINES))}, not 'warp'"),
    ("[" * 100_000, "ConfigError", None),
])
def test_config_from_json_errors(text, exc, message):
    from tpesim import errors
    from tpesim.config import config_from_json

    with pytest.raises(getattr(errors, exc)) as ei:
        config_from_json(text)
    assert "\n" not in str(ei.value)
    if message is not None:
        assert str(ei.value) == message


def test_config_from_json_bom_and_round_trip():
    from tpesim.config import config_from_json, config_from_toml
    from tpesim.engines.adder_tree import AdderTreeConfig

    for cfg in (SystolicConfig(rows=3, cols=2, dataflow="is"),
                AdderTreeConfig(lanes=5, cols=3, encoding="ent", double_buffer=True)):
        assert config_from_json("\ufeff" + cfg.to_json()) == cfg
        assert config_from_toml(cfg.to_toml()) == cfg
        assert type(config_from_json(cfg.to_json())) is type(cfg)


def test_config_from_toml_errors():
    from tpesim.config import config_from_toml
    from tpesim.errors import ConfigError

    with pytest.raises(ConfigError, match="^engine config TOML must not be empty$"):
        config_from_toml("  \n")
    with pytest.raises(ConfigError, match="^engine config TOML is malformed: "):
        config_from_toml("rows = = 3")
