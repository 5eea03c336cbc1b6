"""Text classifiers (issue #17): token ids ``(N, T)`` with an attention mask,
explained at a token layer; maps over the tokens, the Captum ``visualize_text``
rows, the snippet gallery, and bad input.

The task is synthetic: a vocabulary of 30 tokens, class 1 iff "good" or
"great" occurs, sentences of 8 to 12 tokens padded to 12. The classifier
(embedding → a token-wise encoder → masked mean → linear head) is trained
in the module fixture to ≥ 95 % held-out accuracy (measured: 100 % after a
few epochs, well under a second).
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
from captum_srae.visualization import (
    concept_snippets,
    format_snippets,
    text_concept_records,
    visualize_text_concepts,
)

VOCAB = ["<pad>", "good", "great"] + [f"w{i}" for i in range(3, 30)]
PAD, GOOD, GREAT, T = 0, 1, 2, 12
#: Measured over SRAE seeds 0-7: the signed class map's maximum lies on
#: "good"/"great" in 86 % to 100 % (mean 94 %) of the held-out positive
#: sentences (seed 1: 100 %); the bound keeps a margin. With ReLU'd maps it
#: is 68 % to 100 %: in seeds 0, 2 and 5 every x-feature has a negative mean
#: contribution on the positive sentences (the XNN writes the score as bias
#: minus "no key word" evidence), and clipping those maps at zero loses the
#: sign. The fixture uses seed 1, whose x-feature 2 carries the key words.
MIN_KEY_HIT = 0.8


def _sentences(n: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """ids ``(n, T)`` padded with PAD, the mask (True = real token), labels."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.full((n, T), PAD)
    mask = torch.zeros(n, T, dtype=torch.bool)
    labels = torch.zeros(n, dtype=torch.long)
    for i in range(n):
        length = int(torch.randint(8, T + 1, (1,), generator=g))
        s = torch.randint(3, len(VOCAB), (length,), generator=g)
        if i % 2:
            for _ in range(int(torch.randint(1, 3, (1,), generator=g))):
                pos = int(torch.randint(0, length, (1,), generator=g))
                s[pos] = int(torch.randint(GOOD, GREAT + 1, (1,), generator=g))
            labels[i] = 1
        ids[i, :length], mask[i, :length] = s, True
    return ids, mask, labels


class TextNet(nn.Module):
    """Embedding → token-wise encoder (the explained layer, ``(N, T, D)``) →
    mean over the real tokens → linear head."""

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.embed = nn.Embedding(len(VOCAB), dim, padding_idx=PAD)
        self.encoder = nn.Sequential(nn.Linear(dim, dim), nn.Tanh())
        self.head = nn.Linear(dim, 2)

    def forward(self, ids: Tensor, mask: Tensor) -> Tensor:
        a = self.encoder(self.embed(ids))
        m = mask.unsqueeze(-1).to(a.dtype)
        return self.head((a * m).sum(1) / m.sum(1).clamp_min(1))


@pytest.fixture(scope="module")
def trained() -> dict[str, Tensor | nn.Module]:
    torch.manual_seed(0)
    ids, mask, labels = _sentences(600, 0)
    net = TextNet()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(20):
        perm = torch.randperm(len(ids))
        for b in perm.split(50):
            loss = nn.functional.cross_entropy(net(ids[b], mask[b]), labels[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    tids, tmask, tlabels = _sentences(200, 1)
    with torch.no_grad():
        acc = (net(tids, tmask).argmax(1) == tlabels).float().mean().item()
    assert acc >= 0.95, acc
    return {"net": net, "ids": ids, "mask": mask, "tids": tids, "tmask": tmask,
            "tlabels": tlabels}  # fmt: skip


@pytest.fixture(scope="module")
def explainer(trained: dict) -> SRAEAttribution:
    cfg = SRAEConfig(n_concepts=3, pooling="mean", seed=1)
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
    assert mean_c[best] > 0.2, mean_c  # measured: 0.41 (seed 1)
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
