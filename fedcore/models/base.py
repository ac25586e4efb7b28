"""What fedcore needs to know about a model: its attention blocks and its shape.

Every attention block is described once, by :class:`AttentionBlock`; importance,
pruning, LoRA slicing, aggregation and accounting all read that description and
never look at a model family's module names themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

BlockGroup = Literal["encoder", "decoder", "cross"]
Projection = Literal["q", "k", "v", "o"]
PROJECTIONS: tuple[Projection, ...] = ("q", "k", "v", "o")


@dataclass(frozen=True)
class AttentionBlock:
    """One multi-head attention block.

    ``q``, ``k``, ``v`` and ``o`` are dotted module paths of the four linear
    projections inside the *base* transformers model (before PEFT wraps it), e.g.
    ``bert.encoder.layer.0.attention.self.query``. For q/k/v head ``h`` owns the
    output rows ``[h*d, (h+1)*d)``; for o it owns the input columns of the same
    range. With grouped-query attention k and v have ``num_kv_heads`` groups and
    query head ``h`` reads key/value group ``h // (num_heads // num_kv_heads)``.
    """

    index: int  # row of this block in every [blocks x heads] matrix
    name: str  # display name, e.g. "enc.3", "dec.1.cross"
    group: BlockGroup
    layer: int
    module: str  # dotted path of the attention module (the one holding q/k/v)
    q: str
    k: str
    v: str
    o: str
    num_heads: int
    num_kv_heads: int
    head_dim: int

    @property
    def queries_per_kv(self) -> int:
        return self.num_heads // self.num_kv_heads

    def kv_group(self, head: int) -> int:
        return head // self.queries_per_kv

    def projection(self, name: Projection) -> str:
        return {"q": self.q, "k": self.k, "v": self.v, "o": self.o}[name]

    def units(self, name: Projection) -> int:
        """Number of head slices of a projection: kv groups for k/v, heads otherwise."""
        return self.num_kv_heads if name in ("k", "v") else self.num_heads


@dataclass(frozen=True)
class ArchInfo:
    """Shape facts used by the analytic OPs count (:mod:`fedcore.accounting`)."""

    family: Literal["bert", "t5", "llama"]
    hidden: int
    ffn: int
    ffn_matrices: int  # 2 for BERT/T5 (in, out); 3 for gated Llama/T5-v1.1 (gate, up, down)
    vocab: int
    num_labels: int  # classifier outputs; 0 when the LM head is used
    blocks: tuple[AttentionBlock, ...] = field(default_factory=tuple)
    encoder_layers: int = 0
    decoder_layers: int = 0
    pooler_dense: bool = True  # BERT: a dense pooler on [CLS]; False with mean pooling (no matrix product)

    @property
    def num_heads(self) -> int:
        return self.blocks[0].num_heads if self.blocks else 0
