"""A synthetic text task and a small text classifier, for tests and tutorials.

:func:`make_keyword_sentences` draws padded sentences of token ids from a
small English vocabulary: a sentence is positive (label 1) iff it contains
one of the key words "good" or "great". :class:`KeywordTextNet` classifies
them (embedding → encoder, the explained token layer ``(N, T, D)`` → mean
over the real tokens → linear head) and :func:`train_text_classifier`
trains it in a few seconds on a CPU. Nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from captum_srae.utils.validation import check_int

__all__ = [
    "KEYWORDS",
    "TEXT_VOCAB",
    "KeywordTextNet",
    "TextData",
    "make_keyword_sentences",
    "train_text_classifier",
]

#: The vocabulary: padding first, then the two key words, then filler words.
TEXT_VOCAB: tuple[str, ...] = (
    "<pad>", "good", "great",
    "the", "a", "movie", "film", "plot", "was", "is", "and", "actors",
    "story", "scene", "music", "long", "it", "very", "of", "in", "with",
    "ending", "cast", "this", "script", "camera", "slow", "two", "hours",
    "at", "times",
)  # fmt: skip
#: The ids of the key words that make a sentence positive.
KEYWORDS: tuple[int, ...] = (1, 2)
_PAD = 0


@dataclass(frozen=True)
class TextData:
    """Sentences drawn by :func:`make_keyword_sentences`.

    Attributes:
        ids (Tensor): ``(N, T)`` int64 token ids, padded with 0 (``"<pad>"``).
        mask (Tensor): ``(N, T)`` bool, True for real tokens.
        labels (Tensor): ``(N,)`` int64, 1 iff a key word occurs.
        vocab (tuple[str, ...]): the words of the ids.
    """

    ids: Tensor
    mask: Tensor
    labels: Tensor
    vocab: tuple[str, ...] = TEXT_VOCAB

    def words(self, i: int) -> list[str]:
        """The real tokens of sentence ``i`` as words."""
        row = self.ids[i][self.mask[i]].tolist()
        return [self.vocab[t] for t in row]


def make_keyword_sentences(
    n: int, seed: int = 0, *, min_len: int = 8, max_len: int = 12
) -> TextData:
    r"""Draw ``n`` sentences; half of them (the odd ones) contain key words.

    Each sentence has a length uniform in ``[min_len, max_len]`` and filler
    words drawn uniformly; an odd-indexed sentence gets one or two key words
    ("good" or "great") at random positions and label 1, an even-indexed one
    has none and label 0. Sentences are padded to ``max_len``. A
    ``torch.Generator`` seeded with ``seed`` draws everything: the same
    arguments give the same tensors, and the global random state is not
    touched.

    Args:
        n (int): Number of sentences, at least 1.
        seed (int, optional): Seed. Default: 0
        min_len (int, optional): Shortest sentence, at least 2. Default: 8
        max_len (int, optional): Longest sentence, the padded length.
            Default: 12

    Returns:
        *TextData*: ids, mask and labels.

    Raises:
        TypeError: if an argument is not an int.
        ValueError: if ``n < 1``, ``seed < 0``, ``min_len < 2`` or
            ``max_len < min_len``.

    Examples::

        >>> from captum_srae.datasets.text import make_keyword_sentences
        >>> data = make_keyword_sentences(4)
        >>> data.ids.shape, data.labels.tolist()
        (torch.Size([4, 12]), [0, 1, 0, 1])
    """
    check_int(n, "n")
    check_int(seed, "seed", minimum=0)
    check_int(min_len, "min_len", minimum=2)
    check_int(max_len, "max_len", minimum=2)
    if max_len < min_len:
        raise ValueError(f"max_len must be at least min_len ({min_len}), got {max_len}")
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_len, max_len + 1, (n,), generator=g)
    ids = torch.randint(len(KEYWORDS) + 1, len(TEXT_VOCAB), (n, max_len), generator=g)
    labels = torch.arange(n) % 2
    n_keys = torch.randint(1, 3, (n, 1), generator=g)
    pos = (torch.rand(n, 2, generator=g) * lengths[:, None]).long()
    word = torch.tensor(KEYWORDS)[torch.randint(0, len(KEYWORDS), (n, 2), generator=g)]
    for j in range(2):
        put = (labels == 1) & (n_keys[:, 0] > j)
        ids[put, pos[put, j]] = word[put, j]
    mask = torch.arange(max_len)[None] < lengths[:, None]
    ids = ids.masked_fill(~mask, _PAD)
    return TextData(ids=ids, mask=mask, labels=labels)


class KeywordTextNet(nn.Module):
    r"""Embedding → encoder (explained layer ``encoder``, ``(N, T, D)``) →
    mean over the real tokens → linear head.

    ``forward(ids, mask)`` returns ``(N, 2)`` logits. With
    ``attention=False`` the encoder is token-wise (``Linear`` + ``Tanh``:
    each token's output depends on that token only); with ``attention=True``
    it is one ``nn.TransformerEncoderLayer`` (2 heads, padding masked), whose
    attention mixes the tokens.

    Args:
        vocab_size (int, optional): Embedding rows. Default: ``len(TEXT_VOCAB)``
        dim (int, optional): Token width. Default: 16
        attention (bool, optional): A transformer encoder layer.
            Default: False

    Examples::

        >>> net = KeywordTextNet()
        >>> data = make_keyword_sentences(3)
        >>> net(data.ids, data.mask).shape
        torch.Size([3, 2])
    """

    def __init__(
        self, vocab_size: int = len(TEXT_VOCAB), dim: int = 16, attention: bool = False
    ) -> None:
        super().__init__()
        check_int(vocab_size, "vocab_size")
        check_int(dim, "dim")
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=_PAD)
        self.attention = bool(attention)
        if self.attention:
            self.encoder: nn.Module = nn.TransformerEncoderLayer(
                dim, 2, 2 * dim, dropout=0.0, batch_first=True
            )
        else:
            self.encoder = nn.Sequential(nn.Linear(dim, dim), nn.Tanh())
        self.head = nn.Linear(dim, 2)

    def forward(self, ids: Tensor, mask: Tensor) -> Tensor:
        """Logits ``(N, 2)`` of token ids ``(N, T)`` with mask ``(N, T)``."""
        t = self.embed(ids)
        if self.attention:
            a = self.encoder(t, src_key_padding_mask=mask == 0)
        else:
            a = self.encoder(t)
        m = mask.unsqueeze(-1).to(a.dtype)
        return self.head((a * m).sum(1) / m.sum(1).clamp_min(1))


def train_text_classifier(
    model: nn.Module,
    data: TextData,
    epochs: int = 20,
    seed: int = 0,
    *,
    lr: float = 3e-3,
    batch_size: int = 50,
) -> float:
    r"""Train ``model(ids, mask)`` on ``data`` with Adam and cross-entropy.

    Args:
        model (nn.Module): A classifier taking ``(ids, mask)``.
        data (TextData): The training sentences.
        epochs (int, optional): Passes over the data. Default: 20
        seed (int, optional): Seed of the shuffling (seed the model's
            initialisation yourself). Default: 0
        lr (float, optional): Learning rate. Default: 3e-3
        batch_size (int, optional): Mini-batch size. Default: 50

    Returns:
        float: the training accuracy after the last epoch; the model is left
        in eval mode.

    Raises:
        TypeError: if ``epochs`` or ``batch_size`` is not an int.
        ValueError: if either is below 1.

    Examples::

        >>> net = KeywordTextNet()
        >>> acc = train_text_classifier(net, make_keyword_sentences(600))
    """
    check_int(epochs, "epochs")
    check_int(batch_size, "batch_size")
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        for b in torch.randperm(len(data.ids), generator=g).split(batch_size):
            logits = model(data.ids[b], data.mask[b])
            loss = nn.functional.cross_entropy(logits, data.labels[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        pred = model(data.ids, data.mask).argmax(1)
    return float((pred == data.labels).float().mean())
