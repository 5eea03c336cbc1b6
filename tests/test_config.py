"""SRAEConfig: presets, validation, dict round trip."""

from __future__ import annotations

import dataclasses
import json

import pytest

from captum_srae import SRAEConfig
from captum_srae.core.config import QI2021_SCHEDULE


def test_authors_preset_has_the_papers_values():
    cfg = SRAEConfig.preset("qi2021")
    assert cfg.n_concepts == 5
    assert cfg.hidden_sizes == (800, 100)
    assert cfg.dropout == 0.02
    assert cfg.q == 100.0
    assert (cfg.alpha_pred, cfg.alpha_rec, cfg.alpha_pt) == (1.0, 10.0, 10.0)
    assert cfg.standardize is False
    assert (cfg.lr, cfg.weight_decay, cfg.batch_size) == (1e-3, 1e-4, 50)
    assert (cfg.lr_step_epochs, cfg.lr_gamma) == (40, 0.1)
    assert cfg.retune_rounds == 5
    assert (cfg.retune_rec_factor, cfg.retune_pt_factor) == (1.2, 0.8)
    assert (cfg.pull_away_axis, cfg.v_weighting) == ("images", True)


def test_default_preset_differs_only_in_scale_handling():
    default, paper = SRAEConfig.preset("default"), SRAEConfig.preset("qi2021")
    assert default == SRAEConfig()
    diff = {
        f.name
        for f in dataclasses.fields(SRAEConfig)
        if getattr(default, f.name) != getattr(paper, f.name)
    }
    # the authors' weights, no standardisation, and their training schedule
    assert diff == {"alpha_pred", "standardize"} | set(QI2021_SCHEDULE)
    assert all(getattr(paper, k) == v for k, v in QI2021_SCHEDULE.items())
    assert SRAEConfig.preset("qi2021", n_concepts=12).n_concepts == 12


def test_round_trip_through_dict_and_json():
    cfg = SRAEConfig(
        n_concepts=7,
        hidden_sizes=(64, 16),
        pull_away_axis="features",
        reconstruction="mse",
        pooling="flatten",
        decoder_relu=False,
        seed=3,
    )
    assert SRAEConfig.from_dict(cfg.to_dict()) == cfg
    assert SRAEConfig.from_dict(json.loads(cfg.to_json())) == cfg
    assert json.loads(cfg.to_json())["hidden_sizes"] == [64, 16]


@pytest.mark.parametrize(
    "field, value, error",
    [
        ("n_concepts", 0, ValueError),
        ("n_concepts", 2.5, ValueError),
        ("hidden_sizes", (10,), ValueError),
        ("dropout", 1.0, ValueError),
        ("q", 0.0, ValueError),
        ("alpha_pred", -1.0, ValueError),
        ("pull_away_axis", "rows", ValueError),
        ("reconstruction", "l1", ValueError),
        ("pooling", "max", ValueError),
        ("val_fraction", 1.0, ValueError),
        ("batch_size", 0, ValueError),
        ("standardize", "yes", TypeError),
        ("decoder_relu", 1, TypeError),
    ],
)
def test_invalid_values_name_the_field(field, value, error):
    with pytest.raises(error, match=field):
        SRAEConfig(**{field: value})


def test_from_dict_rejects_unknown_fields_and_non_mappings():
    with pytest.raises(ValueError, match="unknown SRAEConfig fields"):
        SRAEConfig.from_dict({"n_concept": 3})
    with pytest.raises(TypeError, match="mapping"):
        SRAEConfig.from_dict([("n_concepts", 3)])
    with pytest.raises(ValueError, match="name"):
        SRAEConfig.preset("nope")
