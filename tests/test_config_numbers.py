"""Numbers as people type them (issue 21 item 2): YAML 1.2 floats in config files and ``--set``; an int field
refuses a float (``1e3``, ``2.5``) in one line instead of truncating it. Properties over the whole config schema."""

from __future__ import annotations

import dataclasses
import tempfile
import typing
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from videotaf.config import Config, ConfigError, load_config, parse_yaml


def leaf_fields(cls: type = Config, prefix: str = "") -> dict[str, typing.Any]:
    """Every scalar field of the schema, dotted name -> annotation (nested sections walked)."""
    out: dict[str, typing.Any] = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out.update(leaf_fields(typing.cast(type, tp), f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = tp
    return out


def fields_of(*kinds: typing.Any) -> list[str]:
    """The dotted names whose annotation is one of ``kinds`` (``float``, ``float | None``, ...)."""
    return sorted(name for name, tp in leaf_fields().items() if tp in kinds)


FLOAT_FIELDS = fields_of(float, float | None)
INT_FIELDS = fields_of(int, int | None)


def value_of(cfg: Config, dotted: str) -> typing.Any:
    node: typing.Any = cfg
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


def test_the_schema_walk_finds_the_fields_people_set():
    assert {"optim.lr", "optim.weight_decay", "optim.clip_grad_norm", "adversarial.eps"} <= set(FLOAT_FIELDS)
    assert {"optim.epochs", "optim.batch_size", "adversarial.num_nonkey", "data.seed"} <= set(INT_FIELDS)


@st.composite
def float_spellings(draw: st.DrawFn) -> str:
    """A value m * 10^k in (0, 1) as people write it: 5e-4, 5E-4, 0.0005, .0005, 12_345e-8."""
    m = draw(st.integers(1, 999_999))
    k = draw(st.integers(-10, -6))
    digits = str(m)
    style = draw(st.sampled_from(["e", "E", "decimal", "dot", "underscore"]))
    if style in ("e", "E"):
        return f"{digits}{style}{k}"
    if style == "underscore" and len(digits) > 1:
        cut = draw(st.integers(1, len(digits) - 1))
        return f"{digits[:cut]}_{digits[cut:]}e{k}"
    text = "0." + "0" * (-k - len(digits)) + digits  # m * 10^k written out (-k >= 6 >= len(digits))
    return text[1:] if style == "dot" and text.startswith("0.") else text


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(FLOAT_FIELDS), text=float_spellings())
def test_every_float_field_reads_floats_as_typed_in_files_and_set(name, text):
    expected = float(text)  # Python's reading: correctly rounded, underscores allowed
    assert 0.0 < expected < 1.0
    assert value_of(load_config(None, [f"{name}={text}"]), name) == expected
    section, key = name.split(".")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        path.write_text(f"{section}:\n  {key}: {text}\n")
        assert value_of(load_config(path), name) == expected


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(INT_FIELDS),
    text=st.sampled_from(["1e3", "2.5", "1_000.0", ".5", "5E-4", "1.", "8.0", "-1e3"]),
)
def test_every_int_field_refuses_a_float_in_one_line(name, text):
    with pytest.raises(ConfigError) as err:
        load_config(None, [f"{name}={text}"])
    message = str(err.value)
    assert "\n" not in message and repr(name) in message and "expects int" in message
    assert "without a dot or an exponent" in message


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(INT_FIELDS), n=st.integers(1, 8))
def test_every_int_field_keeps_an_int(name, n):
    assert value_of(load_config(None, [f"{name}={n}"]), name) == n


@pytest.mark.parametrize(
    ("text", "value"),
    [("1e-3", 1e-3), ("5E-4", 5e-4), (".5", 0.5), ("1_000.0", 1000.0), ("1e3", 1000.0), ("-2.5e+2", -250.0)],
)
def test_yaml12_floats_by_hand(text, value):
    assert parse_yaml(text) == value and isinstance(parse_yaml(text), float)


@pytest.mark.parametrize("text", ["12", "0", "-3", "1_000"])
def test_ints_stay_ints(text):
    value = parse_yaml(text)
    assert isinstance(value, int) and value == int(text.replace("_", ""))


@pytest.mark.parametrize("text", ["1e", "e3", ".", "x1e3", "1.2.3", "_1.0", "1e3x"])
def test_what_is_not_a_number_stays_a_string(text):
    assert parse_yaml(text) == text


def test_the_issue_examples(tmp_path):
    cfg = load_config(None, ["optim.lr=1e-3", "optim.weight_decay=5E-4"])
    assert (cfg.optim.lr, cfg.optim.weight_decay) == (0.001, 0.0005)
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr: 1e-3\n  epochs: 3\n")
    assert load_config(path).optim.lr == 0.001
    path.write_text("optim:\n  epochs: 1e3\n")
    with pytest.raises(ConfigError, match=r"c\.yaml.*'optim\.epochs' expects int, got 1000\.0"):
        load_config(path)
