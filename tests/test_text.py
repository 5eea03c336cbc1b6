"""Text classifiers (issue #17): token ids ``(N, T)`` with an attention mask,
explained at a token layer; maps over the tokens, the Captum ``visualize_text``
rows, the snippet gallery, and bad input.

The task is synthetic (:mod:`captum_srae.datasets.text`): a vocabulary of 31
words, class 1 iff "good" or "great" occurs, sentences of 8 to 12 tokens
padded to 12. The classifier (embedding → a token-wise encoder → masked mean
→ linear head) is trained in the module fixture to ≥ 95 % held-out accuracy
(measured: 96.5 %, under 2 seconds).
"""

from __future__ import annotations

import sys
import warnings

import pytest
import torch
from torch import Tensor, nn

from captum_srae import SRAEAttribution, SRAEConfig
from captum_srae.attribution.text import check_token_ids, input_embedding
from captum_srae.attribution.tokens import mask_tokens
from captum_srae.datasets.text import (
    KEYWORDS,
    TEXT_VOCAB,
    KeywordTextNet,
    make_keyword_sentences,
    train_text_classifier,
)
from captum_srae.visualization import (
    concept_snippets,
    format_snippets,
    text_concept_records,
    visualize_text_concepts,
)

VOCAB = TEXT_VOCAB
GOOD, GREAT = KEYWORDS
T = 12
#: Measured over SRAE seeds 0-7 on the earlier synthetic vocabulary (same
#: rule, lengths and network): the signed class map's maximum lay on
#: "good"/"great" in 86 % to 100 % (mean 94 %) of the held-out positive
#: sentences; with ReLU'd maps 68 % to 100 %: when every x-feature has a
#: negative mean contribution on the positive sentences (the XNN writes the
#: score as bias minus "no key word" evidence), clipping the maps at zero
#: loses the sign. The bound keeps a margin.
MIN_KEY_HIT = 0.8


@pytest.fixture(scope="module")
def trained() -> dict[str, Tensor | nn.Module]:
    torch.manual_seed(0)
    train = make_keyword_sentences(600, 0)
    net = KeywordTextNet()
    train_text_classifier(net, train, epochs=20, seed=0)
    test = make_keyword_sentences(200, 1)
    with torch.no_grad():
        acc = (net(test.ids, test.mask).argmax(1) == test.labels).float().mean()
    assert acc.item() >= 0.95, acc
    return {"net": net, "ids": train.ids, "mask": train.mask, "tids": test.ids,
            "tmask": test.mask, "tlabels": test.labels}  # fmt: skip


@pytest.fixture(scope="module")
def explainer(trained: dict) -> SRAEAttribution:
    # seed 0: the gallery's best x-feature holds a key word in 5 of 5
    # snippets with 1 and with 2 threads (seeds 2-5 too; seed 1 only with 1
    # thread, seeds 6 and 7 with neither: 1 and 0 of 5)
    cfg = SRAEConfig(n_concepts=3, pooling="mean", seed=0)
    sa = SRAEAttribution(trained["net"], "encoder", config=cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sa.fit(
            trained["ids"],
            target=1,
            show_progress=False,
            additional_forward_args=(trained["mask"],),
        )
    return sa


def _tokens(ids: Tensor) -> list[list[str]]:
    return [[VOCAB[i] for i in row.tolist()] for row in ids]


def test_token_maps_shape_finite_and_masked(trained: dict, explainer) -> None:
    tids, tmask = trained["tids"], trained["tmask"]
    maps = explainer.attribute(
        tids, target=1, additional_forward_args=(tmask,), interpolate=False
    )
    assert maps.shape == (200, 3, T) and maps.dtype == torch.float32
    assert torch.isfinite(maps).all()
    # T = 16 would form a 4 x 4 grid; "tokens" keeps the tokens whatever T
    same = explainer.attribute(
        tids, target=1, additional_forward_args=(tmask,), interpolate="tokens"
    )
    torch.testing.assert_close(same, maps)
    masked = mask_tokens(maps, tmask)
    assert (masked[~tmask.unsqueeze(1).expand_as(masked)] == 0).all()
    torch.testing.assert_close(masked[:, :, :8], maps[:, :, :8])  # no padding
    with pytest.raises(ValueError, match="mask"):
        mask_tokens(maps, tmask[:, :5])


def test_class_map_peaks_on_key_words(trained: dict, explainer) -> None:
    tids, tmask, tlabels = trained["tids"], trained["tmask"], trained["tlabels"]
    cm = explainer.attribute(
        tids,
        target=1,
        additional_forward_args=(tmask,),
        interpolate="tokens",
        output="class",
        relu_attributions=False,
    )[:, 0]
    top = tids.gather(1, cm.masked_fill(~tmask, -torch.inf).argmax(1, True))[:, 0]
    pos = tlabels == 1
    hit = ((top == GOOD) | (top == GREAT))[pos].float().mean().item()
    assert hit >= MIN_KEY_HIT, hit


def test_row_wise_mask_is_split_with_the_data(trained: dict) -> None:
    """fit's batches (64) get their own rows of the mask: the same x-features
    as passing (ids, mask) as a tuple of inputs."""
    from captum_srae.activations import collect_activations

    net, ids, mask = trained["net"], trained["ids"][:100], trained["mask"][:100]
    z1, y1 = collect_activations(
        net, "encoder", ids, 1, pooling="mean", additional_forward_args=(mask,),
        show_progress=False,
    )  # fmt: skip
    z2, y2 = collect_activations(
        net, "encoder", (ids, mask), 1, pooling="mean", show_progress=False
    )
    torch.testing.assert_close(z1, z2)
    torch.testing.assert_close(y1, y2)


def test_gallery_snippets_hold_key_words(trained: dict, explainer) -> None:
    tids, tmask = trained["tids"], trained["tmask"]
    snippets = concept_snippets(
        explainer, tids, _tokens(tids), target=1, k=5, window=1,
        additional_forward_args=(tmask,), mask=tmask,
    )  # fmt: skip
    assert len(snippets) == 3 and all(len(s) == 5 for s in snippets)
    c = explainer.contributions(tids, target=1, additional_forward_args=(tmask,))
    mean_c = c[trained["tlabels"] == 1].mean(0)
    best = int(mean_c.argmax())
    assert mean_c[best] > 0.2, mean_c  # measured: 0.31 (1 thread), 0.43 (2)
    assert all(("good" in s or "great" in s) for s in snippets[best]), snippets
    assert all("<pad>" not in s for row in snippets for s in row)
    assert all(len(s.split()) <= 3 for row in snippets for s in row)
    text = format_snippets(snippets, c.mean(0))
    assert f"x-feature {best}" in text and snippets[best][0] in text
    page = format_snippets([["a <b>"]], as_html=True)
    assert "a &lt;b&gt;" in page and page.startswith("<table>")


def test_visualize_text_rows(trained: dict, explainer) -> None:
    tids, tmask, tlabels = trained["tids"], trained["tmask"], trained["tlabels"]
    i = int(torch.nonzero(tlabels == 1)[0])
    tokens = _tokens(tids[i : i + 1])[0]
    kw = {"additional_forward_args": (tmask[i : i + 1],), "mask": tmask[i]}
    records = text_concept_records(explainer, tids[i], tokens, 1, **kw)
    c = explainer.contributions(tids[i : i + 1], 1, (tmask[i : i + 1],))[0]
    assert [r.attr_score for r in records] == sorted(c.tolist(), reverse=True)
    n_real = int(tmask[i].sum())
    for r in records:
        assert len(r.raw_input_ids) == n_real == len(r.word_attributions)
        assert float(r.word_attributions.abs().max()) <= 1.0 + 1e-6
        assert r.pred_class == 1 and r.true_class == 1
    page = visualize_text_concepts(explainer, tids[i], tokens, 1, **kw)
    assert "x-feature 0" in page.data and "x-feature 2" in page.data
    assert all(tok in page.data for tok in tokens[:n_real])
    assert "<pad>" not in page.data and "#pad" not in page.data


def test_visualize_text_without_ipython_says_what_to_install(
    trained: dict, explainer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "IPython", None)  # import IPython fails
    tids, tmask = trained["tids"], trained["tmask"]
    tokens = _tokens(tids[:1])[0]
    kw = {"additional_forward_args": (tmask[:1],), "mask": tmask[0]}
    with pytest.raises(ValueError, match="needs IPython"):
        visualize_text_concepts(explainer, tids[0], tokens, 1, **kw)


def test_bad_token_ids_name_the_argument(trained: dict, explainer) -> None:
    net, ids, mask = trained["net"], trained["tids"][:4], trained["tmask"][:4]
    assert input_embedding(net) is net.embed
    assert input_embedding(nn.Linear(2, 2)) is None
    for bad in (ids.clone().fill_(len(VOCAB)), ids.clone().fill_(-1)):
        with pytest.raises(ValueError, match="inputs: token ids must lie in"):
            explainer.attribute(bad, 1, (mask,), interpolate="tokens")
        with pytest.raises(ValueError, match="inputs: token ids"):
            explainer.contributions(bad, 1, (mask,))
        with pytest.raises(ValueError, match="data: token ids"):
            SRAEAttribution(net, "encoder").fit(bad, target=1, show_progress=False)
    check_token_ids(net, torch.rand(2, 3))  # floats are not ids: no check


def test_ragged_lists_name_the_argument(trained: dict, explainer) -> None:
    ragged = [[3, 4, 5, 6, 7, 8, 9, 10], [3, 4, 5, 6, 7, 8, 9, 10, 11]]
    with pytest.raises(ValueError, match=r"inputs: 2 token sequences .* \(8 to 9\)"):
        explainer.attribute(ragged, target=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="data: 2 token sequences"):
        SRAEAttribution(trained["net"], "encoder").fit(ragged, target=1)


def test_display_arguments_are_checked(trained: dict, explainer) -> None:
    tids, tmask = trained["tids"][:3], trained["tmask"][:3]
    with pytest.raises(ValueError, match="tokens must hold 3 lists of 12"):
        concept_snippets(explainer, tids, _tokens(tids)[:2], target=1)
    with pytest.raises(ValueError, match="mask of shape"):
        concept_snippets(explainer, tids, _tokens(tids), 1, mask=tmask[:, :4])
    with pytest.raises(ValueError, match="k must"):
        concept_snippets(explainer, tids, _tokens(tids), 1, k=0)


def test_keyword_sentences_follow_their_rule() -> None:
    data = make_keyword_sentences(400, 3, min_len=5, max_len=9)
    again = make_keyword_sentences(400, 3, min_len=5, max_len=9)
    assert torch.equal(data.ids, again.ids) and torch.equal(data.mask, again.mask)
    assert not torch.equal(data.ids, make_keyword_sentences(400, 4, max_len=9).ids)
    assert data.ids.shape == (400, 9) and data.ids.dtype == torch.int64
    lengths = data.mask.sum(1)
    assert int(lengths.min()) == 5 and int(lengths.max()) == 9
    # real tokens first, then padding (id 0) only
    assert torch.equal(data.mask, torch.arange(9)[None] < lengths[:, None])
    assert (data.ids[~data.mask] == 0).all() and (data.ids[data.mask] > 0).all()
    has_key = ((data.ids == GOOD) | (data.ids == GREAT)).any(1)
    assert torch.equal(has_key.long(), data.labels)
    assert data.labels.float().mean() == 0.5
    keys = ((data.ids == GOOD) | (data.ids == GREAT)).sum(1)[data.labels == 1]
    assert set(keys.tolist()) <= {1, 2} and (keys == 2).any()
    assert data.words(0) == [TEXT_VOCAB[i] for i in data.ids[0, : lengths[0]]]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0}, "n must be"),
        ({"n": 4, "seed": -1}, "seed must be"),
        ({"n": 4, "min_len": 1}, "min_len must be"),
        ({"n": 4, "min_len": 6, "max_len": 5}, "max_len must be at least"),
    ],
)
def test_keyword_sentences_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_keyword_sentences(**kwargs)
    with pytest.raises(TypeError, match="n must be an int"):
        make_keyword_sentences(2.0)  # type: ignore[arg-type]


def test_attention_text_net_masks_padding() -> None:
    torch.manual_seed(0)
    net = KeywordTextNet(attention=True).eval()
    data = make_keyword_sentences(6, 0)
    longer = torch.cat([data.ids, torch.full((6, 4), 7)], 1)  # junk padding
    mask = torch.cat([data.mask, torch.zeros(6, 4, dtype=torch.bool)], 1)
    with torch.no_grad():
        torch.testing.assert_close(net(data.ids, data.mask), net(longer, mask))


@pytest.fixture(scope="module")
def attention_explainer() -> dict:
    """A model whose attention mixes the tokens, explained at its encoder."""
    torch.manual_seed(0)
    net = KeywordTextNet(attention=True)
    train = make_keyword_sentences(600, 0)
    train_text_classifier(net, train)
    cfg = SRAEConfig(n_concepts=3, pooling="mean", seed=0)
    sa = SRAEAttribution(net, "encoder", heatmap_layer="embed", config=cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sa.fit(train.ids, 1, show_progress=False, additional_forward_args=(train.mask,))
    return {"sa": sa, "net": net, "test": make_keyword_sentences(200, 1)}


def _key_hit(class_map: Tensor, test) -> float:
    top = test.ids.gather(
        1, class_map.masked_fill(~test.mask, -torch.inf).argmax(1, True)
    )[:, 0]
    return ((top == GOOD) | (top == GREAT))[test.labels == 1].float().mean().item()


def test_through_attention_integrated_gradients_at_the_embedding_find_key_words(
    attention_explainer: dict,
) -> None:
    """Measured over SRAE seeds 0-7: the class map's peak is on a key word in
    2-27 % of positive sentences with maps at the explained layer (attention
    has spread the evidence over every token), 72-100 % with
    LayerIntegratedGradients at the embedding (seed 0: 0.02 and 0.96)."""
    sa, test = attention_explainer["sa"], attention_explainer["test"]
    kw = {"additional_forward_args": (test.mask,), "interpolate": "tokens",
          "output": "class", "relu_attributions": False}  # fmt: skip
    at_layer = SRAEAttribution.from_sraes(
        attention_explainer["net"], "encoder", sa.sraes_, n_outputs=2
    )
    assert _key_hit(at_layer.attribute(test.ids, 1, **kw)[:, 0], test) <= 0.3
    lig = {"method": "LayerIntegratedGradients",
           "attribution_kwargs": {"baselines": torch.zeros_like(test.ids)}}  # fmt: skip
    cm = sa.attribute(test.ids, 1, **kw, **lig)
    assert cm.shape == (200, 1, T)
    assert _key_hit(cm[:, 0], test) >= 0.6
    # the gallery and the rows take the same method
    snippets = concept_snippets(
        sa, test.ids, _tokens(test.ids), 1, k=5, window=1,
        additional_forward_args=(test.mask,), mask=test.mask, **lig,
    )  # fmt: skip
    # seeds 0 and 1: one x-feature's five snippets all hold "good", another's
    # hold "great" in 2/5 (seed 0) or 5/5 (seed 1)
    held = [sum(("good" in s or "great" in s) for s in row) for row in snippets]
    assert max(held) >= 4, snippets
    i = int(torch.nonzero(test.labels == 1)[0])
    records = text_concept_records(
        sa, test.ids[i], _tokens(test.ids[i : i + 1])[0], 1,
        additional_forward_args=(test.mask[i : i + 1],), mask=test.mask[i],
        method="LayerIntegratedGradients",
        attribution_kwargs={"baselines": torch.zeros_like(test.ids[i : i + 1])},
    )  # fmt: skip
    assert len(records) == 3
