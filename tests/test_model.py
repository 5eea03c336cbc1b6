"""The SRAE module: shapes, standardisation folding, contributions, input checks."""

from __future__ import annotations

import pytest
import torch

from captum_srae import SRAE, SRAEConfig, SRAEOutput


@pytest.fixture
def make_model(tiny_config):
    """``make_model(decoder_relu, nonnegative, k, seed)``: SRAE(10 -> k) with set
    standardisation statistics."""

    def make(decoder_relu=True, nonnegative=True, k=2, seed=0):
        torch.manual_seed(seed)
        cfg = tiny_config.replace(nonnegative=nonnegative)
        m = SRAE(10, k, cfg, decoder_relu=decoder_relu)
        m.z_mean.copy_(torch.linspace(-1, 1, 10))
        m.z_scale.copy_(torch.linspace(0.5, 2, 10))
        m.y_mean.copy_(torch.tensor([3.0, -2.0][:k]))
        m.y_scale.copy_(torch.tensor([4.0, 0.5][:k]))
        return m.eval()

    return make


def test_architecture_follows_the_paper():
    m = SRAE(512, 1, SRAEConfig())
    linears = [x for x in m.encoder if isinstance(x, torch.nn.Linear)]
    assert [(x.in_features, x.out_features) for x in linears] == [
        (512, 800),
        (800, 100),
        (100, 5),
    ]
    assert isinstance(m.encoder[-1], torch.nn.ReLU)
    assert any(isinstance(x, torch.nn.Dropout) and x.p == 0.02 for x in m.encoder)
    dec = [x for x in m.decoder if isinstance(x, torch.nn.Linear)]
    assert [(x.in_features, x.out_features) for x in dec] == [
        (5, 100),
        (100, 800),
        (800, 512),
    ]
    assert (m.predictor.in_features, m.predictor.out_features) == (5, 1)


def test_forward_returns_named_tuple_of_the_three_verbs(make_model):
    m = make_model()
    z = torch.rand(4, 10)
    out = m(z)
    assert isinstance(out, SRAEOutput)
    assert torch.equal(out.x_features, m.encode(z))
    assert torch.equal(out.reconstruction, m.decode(out.x_features))
    assert torch.equal(out.prediction, m.predict(out.x_features))
    assert out.x_features.shape == (4, 3) and out.prediction.shape == (4, 2)


def test_standardisation_is_applied_inside_the_verbs(make_model):
    m = make_model(decoder_relu=False)
    z = torch.rand(5, 10)
    e = m.encode(z)
    assert torch.allclose(e, m.encoder((z - m.z_mean) / m.z_scale))
    assert torch.allclose(m.decode(e), m.decoder(e) * m.z_scale + m.z_mean)
    assert torch.allclose(m.predict(e), m.predictor(e) * m.y_scale + m.y_mean)
    zs = m.standardize_z(z)
    assert torch.allclose(m.decode_standardized(e), m.standardize_z(m.decode(e)))
    assert torch.allclose(m.encode_standardized(zs), e)


def test_contributions_plus_bias_rebuild_the_prediction(make_model):
    m = make_model()
    e = m.encode(torch.rand(6, 10))
    contrib = m.contributions(e)
    assert contrib.shape == (6, 2, 3)
    assert torch.allclose(contrib.sum(-1) + m.bias, m.predict(e), atol=1e-5)
    assert torch.allclose(m.weight, m.predictor.weight * m.y_scale[:, None])


def test_decoder_relu_and_signed_x_features(make_model):
    z = torch.rand(50, 10)
    assert (make_model(decoder_relu=True).decode(torch.rand(50, 3)) >= 0).all()
    assert (make_model(decoder_relu=False).decode(torch.rand(50, 3) * 5) < 0).any()
    assert (make_model().encode(z) >= 0).all()
    signed = make_model(nonnegative=False)
    assert not isinstance(signed.encoder[-1], torch.nn.ReLU)


def test_rejects_bad_construction_and_inputs(make_model, tiny_config):
    with pytest.raises(ValueError, match="n_concepts .* smaller"):
        SRAE(5, 1, SRAEConfig(n_concepts=5))
    with pytest.raises(ValueError, match="in_features"):
        SRAE(0, 1)
    with pytest.raises(ValueError, match="n_outputs"):
        SRAE(10, 0, tiny_config)
    with pytest.raises(TypeError, match="config"):
        SRAE(10, 1, {"n_concepts": 3})
    m = make_model()
    with pytest.raises(ValueError, match=r"z must have shape \(N, 10\)"):
        m.encode(torch.rand(4, 9))
    with pytest.raises(TypeError, match="floating"):
        m.encode(torch.ones(4, 10, dtype=torch.long))
    with pytest.raises(TypeError, match="torch.Tensor"):
        m.encode([[0.0] * 10])
    with pytest.raises(ValueError, match=r"e must have shape \(N, 3\)"):
        m.predict(torch.rand(4, 4))
