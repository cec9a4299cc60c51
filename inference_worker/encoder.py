"""A BERT-style text classifier in plain torch (no transformers dependency).

`TextClassifier` is the module behind the demo family: token + position embeddings, `layers`
pre-built transformer blocks (post-LayerNorm, as BERT), mean pooling over the attention mask,
L2 normalisation (as sentence-transformers' all-MiniLM-L6-v2) and a small classification head.
`forward(input_ids, attention_mask) -> logits` is the signature every variant in a manifest
must have.

`minilm_state_dict` maps the all-MiniLM-L6-v2 safetensors (HF BERT key names) onto this
module: query/key/value are fused into one projection and the token-type-0 embedding is folded
into the position embeddings (the worker never sends segment ids).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    def __init__(self, hidden: int, heads: int, intermediate: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.attn_out = nn.Linear(hidden, hidden)
        self.attn_norm = nn.LayerNorm(hidden, eps=eps)
        self.ff_in = nn.Linear(hidden, intermediate)
        self.ff_out = nn.Linear(intermediate, hidden)
        self.ff_norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, s, h = x.shape
        q, k, v = (
            self.qkv(x).view(b, s, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        )
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = self.attn_norm(x + self.attn_out(att.transpose(1, 2).reshape(b, s, h)))
        return self.ff_norm(x + self.ff_out(F.gelu(self.ff_in(x))))


class TextClassifier(nn.Module):
    """Encoder + mean pooling + head. `head_hidden=0` makes the head a single linear layer."""

    def __init__(
        self,
        *,
        vocab_size: int = 30522,
        hidden: int = 384,
        layers: int = 6,
        heads: int = 12,
        intermediate: int = 1536,
        max_positions: int = 512,
        num_labels: int = 2,
        head_hidden: int = 0,
        eps: float = 1e-12,
    ) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, hidden)
        self.positions = nn.Embedding(max_positions, hidden)
        self.embed_norm = nn.LayerNorm(hidden, eps=eps)
        self.blocks = nn.ModuleList(Block(hidden, heads, intermediate, eps) for _ in range(layers))
        self.head: nn.Module = (
            nn.Linear(hidden, num_labels)
            if head_hidden <= 0
            else nn.Sequential(
                nn.Linear(hidden, head_hidden), nn.GELU(), nn.Linear(head_hidden, num_labels)
            )
        )

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The L2-normalised mean-pooled sentence embedding, shape [batch, hidden]."""
        seq = input_ids.shape[1]
        pos = torch.arange(seq, device=input_ids.device)
        x = self.embed_norm(self.tokens(input_ids) + self.positions(pos))
        keep = attention_mask.to(torch.bool)
        mask = keep[:, None, None, :]
        for block in self.blocks:
            x = block(x, mask)
        weights = keep.unsqueeze(-1).to(x.dtype)
        pooled = (x * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return F.normalize(pooled, dim=-1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(input_ids, attention_mask))


def minilm_state_dict(
    hf: Mapping[str, torch.Tensor], layers: Sequence[int] | None = None
) -> dict[str, torch.Tensor]:
    """Encoder weights of a HF BERT checkpoint renamed for `TextClassifier` (no head).

    `layers` picks which of the checkpoint's layers to keep, in order (all when None): the
    distilled student starts from a subset of the teacher's layers.
    """
    out = {
        "tokens.weight": hf["embeddings.word_embeddings.weight"],
        "positions.weight": hf["embeddings.position_embeddings.weight"]
        + hf["embeddings.token_type_embeddings.weight"][0],
        "embed_norm.weight": hf["embeddings.LayerNorm.weight"],
        "embed_norm.bias": hf["embeddings.LayerNorm.bias"],
    }
    available = sorted({int(k.split(".")[2]) for k in hf if k.startswith("encoder.layer.")})
    for new, old in enumerate(available if layers is None else layers):
        src = f"encoder.layer.{old}."
        dst = f"blocks.{new}."
        for part in ("weight", "bias"):
            out[dst + "qkv." + part] = torch.cat(
                [hf[f"{src}attention.self.{n}.{part}"] for n in ("query", "key", "value")]
            )
            out[dst + "attn_out." + part] = hf[f"{src}attention.output.dense.{part}"]
            out[dst + "attn_norm." + part] = hf[f"{src}attention.output.LayerNorm.{part}"]
            out[dst + "ff_in." + part] = hf[f"{src}intermediate.dense.{part}"]
            out[dst + "ff_out." + part] = hf[f"{src}output.dense.{part}"]
            out[dst + "ff_norm." + part] = hf[f"{src}output.LayerNorm.{part}"]
    return out
