"""Thin SCALE: five modality encoders, a joint co-transformer, SIMCL and the five masked tasks.

Papers: M5Product / SCALE (../shared/papers/002, sections 3-4). Reading of the paper, as built here:

- Each modality's tokens go through its own transformer encoder (``modality_layers``) with a
  learned [CLS] token; the token features of all modalities, tagged with a modality embedding, are
  concatenated and go through the joint co-transformer (JCT, ``joint_layers``). A missing modality
  is zero-imputed and masked out of attention (its [CLS] stays visible so that every row attends
  to something), so incomplete products train.
- A modality's embedding f_m is its encoder's output pooled over its real tokens (``pool = "mean"``,
  or the encoder's [CLS] with ``pool = "cls"``), before the JCT. The fused product feature is the
  mean of the present modalities' L2-normalised f_m (``feature = "encoders"``), or of the JCT's
  outputs pooled the same way per modality (``feature = "joint"``, the papers' JCT features).
- SIMCL (Eq. 2): for every pair of modalities (i, j), the contrastive loss between f_i and f_j over
  the samples of the batch that have both, cosine similarity over temperature tau. We read Eq. 2
  with the positive pair in the denominator (the InfoNCE form): as printed the denominator holds
  negatives only, which makes the loss unbounded below and the learned weights below diverge.
  The paper does not say where f_m is taken. We take it before the JCT (as ALBEF's image-text
  contrastive loss is): after the JCT every modality's output attends to every other modality's
  tokens, so two outputs can agree by copying the same instance detail, and the contrastive losses
  then fall to ~0 without aligning anything (measured: coarse retrieval no better than untrained).
- The modality alignment score matrix S (M x M, initialised at zero, a free parameter) becomes
  weights through ``S * softmax(S)`` (Eq. 3; softmax over the entries used: the upper triangle and
  the diagonal). We read the weights as ``1 + S * softmax(S)``: at initialisation every loss has
  weight 1 (a zero matrix would multiply every loss by zero and nothing would train), and since
  ``s * softmax(s)`` is bounded below, a weight never falls below ~0.6, so no loss can be switched
  off by the optimiser. The upper triangle weights the pairwise contrastive losses, the diagonal
  the masked-task loss of each modality.
- Masked tasks at ``mask_rate`` (15%): MLM (text characters -> ids), MRP (image patches -> their
  pixel features), MEM (whole table entities, property included -> entity ids), MFP (frames -> their features), MAM
  (MFCC blocks -> their features). Masked inputs are replaced by a [MASK] id or zero features; the
  regression targets are the original features (MSE), the token targets their ids (cross-entropy).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .config import MODALITIES, ModelConfig
from .data import feature_dims, lengths
from .features import MASK, PAD


class Encoded(NamedTuple):
    """What :meth:`Scale.forward` returns."""

    unimodal: torch.Tensor  # [B, M, D] each modality encoder's pooled output (SIMCL's f_m)
    joint: torch.Tensor  # [B, M, D] the JCT's output pooled per modality
    tokens: dict  # modality -> [B, L, D] the JCT's outputs at that modality's tokens (the masked tasks' input)


def _pool(h: torch.Tensor, valid: torch.Tensor, how: str) -> torch.Tensor:
    """[B, 1 + L, D] with [CLS] first -> [B, D]: the [CLS] output, or the mean over the real tokens
    (the [CLS] output when there is none)."""
    if how == "cls":
        return h[:, 0]
    w = valid.float().clone()
    w[:, 0] = 0
    none = w.sum(1) == 0
    w[none, 0] = 1
    return (h * (w / w.sum(1, keepdim=True))[..., None]).sum(1)


class EntityEmbedding(nn.Embedding):
    """The table's tokens: ids [B, L, 2] of each entity (``property:value``) and of its property ->
    [B, L, D], the entity's embedding plus, with ``with_property``, its property's (one table)."""

    def __init__(self, vocab: int, dim: int, with_property: bool):
        super().__init__(vocab, dim, padding_idx=PAD)
        self.with_property = with_property

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = super().forward(ids)
        return h[:, :, 0] + h[:, :, 1] if self.with_property else h[:, :, 0]


TOKEN = {"text", "table"}  # modalities of discrete ids; the others are feature vectors


def _encoder(cfg: ModelConfig, layers: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(cfg.dim, cfg.heads, 4 * cfg.dim, cfg.dropout, batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


class Scale(nn.Module):
    """The model; ``forward(batch)`` returns an :class:`Encoded`."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.lengths = lengths(cfg)
        dims = feature_dims(cfg)
        d = cfg.dim
        self.embed = nn.ModuleDict({
            "text": nn.Embedding(cfg.text_vocab, d, padding_idx=PAD),
            "table": EntityEmbedding(cfg.table_vocab, d, cfg.table_property),
            **{m: nn.Sequential(nn.LayerNorm(dims[m]), nn.Linear(dims[m], d)) for m in ("image", "video", "audio")},
        })
        self.position = nn.ParameterDict({m: nn.Parameter(torch.zeros(1, self.lengths[m] + 1, d)) for m in MODALITIES})
        self.cls = nn.ParameterDict({m: nn.Parameter(torch.randn(1, 1, d) * 0.02) for m in MODALITIES})
        self.modality_type = nn.Parameter(torch.randn(len(MODALITIES), d) * 0.02)
        self.encoders = nn.ModuleDict({m: _encoder(cfg, cfg.modality_layers) for m in MODALITIES})
        self.joint = _encoder(cfg, cfg.joint_layers)
        self.norm = nn.LayerNorm(d)
        self.heads = nn.ModuleDict({
            "text": nn.Linear(d, cfg.text_vocab), "table": nn.Linear(d, cfg.table_vocab),
            **{m: nn.Linear(d, dims[m]) for m in ("image", "video", "audio")},
        })
        # Eq. 3: the modality alignment score matrix, initialised at zero, learned with the model
        self.S = nn.Parameter(torch.zeros(len(MODALITIES), len(MODALITIES)))

    def weights(self) -> torch.Tensor:
        """``1 + S * softmax(S)`` over the upper triangle and diagonal; zero below the diagonal."""
        m = len(MODALITIES)
        used = torch.triu(torch.ones(m, m, dtype=torch.bool, device=self.S.device))
        soft = torch.zeros_like(self.S)
        soft[used] = torch.softmax(self.S[used], dim=0)
        return torch.where(used, 1 + self.S * soft, torch.zeros_like(self.S))

    def forward(self, batch: dict, use: tuple[str, ...] = MODALITIES) -> Encoded:
        tokens, masks, spans, unimodal = [], [], {}, []
        start = 0
        device = self.S.device
        for k, m in enumerate(MODALITIES):
            x = batch[m].to(device)
            mask = batch[f"{m}_mask"].to(device)
            present = batch[f"{m}_present"].to(device) & (m in use)
            h = self.embed[m](x)
            h = torch.where(present[:, None, None], h, torch.zeros_like(h))  # zero imputation of a missing modality
            b = h.shape[0]
            h = torch.cat([self.cls[m].expand(b, -1, -1), h], dim=1) + self.position[m][:, : h.shape[1] + 1]
            valid = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=device), mask & present[:, None]], dim=1)
            h = self.encoders[m](h, src_key_padding_mask=~valid)
            unimodal.append(_pool(h, valid, self.cfg.pool))
            tokens.append(h + self.modality_type[k])
            # in the JCT a missing modality's tokens are masked; its [CLS] stays so no row is all-masked
            masks.append(valid)
            spans[m] = (start, start + h.shape[1])
            start += h.shape[1]
        joint = self.norm(self.joint(torch.cat(tokens, dim=1), src_key_padding_mask=~torch.cat(masks, dim=1)))
        pooled = torch.stack([_pool(joint[:, a:b], valid, self.cfg.pool) for (a, b), valid in zip(spans.values(), masks)], dim=1)
        outputs = {m: joint[:, spans[m][0] + 1: spans[m][1]] for m in MODALITIES}
        return Encoded(torch.stack(unimodal, dim=1), pooled, outputs)

    def fused(self, batch: dict, use: tuple[str, ...] = MODALITIES) -> torch.Tensor:
        """The product feature: mean of the present modalities' L2-normalised embeddings (the
        encoders' or the JCT's, by ``feature``)."""
        encoded = self.forward(batch, use)
        emb = encoded.unimodal if self.cfg.feature == "encoders" else encoded.joint
        present = torch.stack([batch[f"{m}_present"].to(emb.device) & (m in use) for m in MODALITIES], dim=1).float()
        emb = F.normalize(emb, dim=-1) * present[..., None]
        return F.normalize(emb.sum(1) / present.sum(1, keepdim=True).clamp(min=1), dim=-1)


def mask_batch(batch: dict, cfg: ModelConfig, generator: torch.Generator) -> tuple[dict, dict]:
    """Mask ``mask_rate`` of every modality's real tokens (whole entities for the table); returns the
    masked batch and, per modality, (positions mask [B, L], targets)."""
    masked = dict(batch)
    targets = {}
    for m in MODALITIES:
        real = batch[f"{m}_mask"]
        pick = (torch.rand(real.shape, generator=generator) < cfg.mask_rate) & real
        x = batch[m]
        if m == "text":
            masked[m] = torch.where(pick, torch.full_like(x, MASK), x)
        else:  # a table entity is masked whole (its property too); features become zeros
            masked[m] = torch.where(pick[..., None], torch.full_like(x, MASK if m in TOKEN else 0), x)
        targets[m] = (pick, x[..., 0] if m == "table" else x)
    return masked, targets


def contrastive(a: torch.Tensor, b: torch.Tensor, tau: float) -> torch.Tensor:
    """Eq. 2 over N pairs (a_i, b_i): both directions, cosine similarity / tau, positives in the denominator."""
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    logits = a @ b.T / tau
    target = torch.arange(len(a), device=a.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


class Objective(nn.Module):
    """SIMCL's total loss as a module's forward, so that every parameter it trains (the heads and S
    included) is used inside ``forward``: DistributedDataParallel syncs the gradients of what the
    forward pass uses."""

    def __init__(self, model: Scale):
        super().__init__()
        self.model = model

    def forward(self, masked: dict, targets: dict, present: dict) -> tuple[torch.Tensor, dict]:
        model = self.model
        cfg = model.cfg
        emb, _, out = model(masked)
        weights = model.weights()
        device = emb.device
        total = torch.zeros((), device=device)
        parts: dict[str, float] = {}
        present = {m: present[m].to(device) for m in MODALITIES}
        for i, mi in enumerate(MODALITIES):
            for j in range(i + 1, len(MODALITIES)):
                mj = MODALITIES[j]
                both = present[mi] & present[mj]
                if int(both.sum()) < 2:
                    continue
                loss = contrastive(emb[both, i], emb[both, j], cfg.temperature)
                total = total + weights[i, j] * loss
                parts[f"cl:{mi}-{mj}"] = float(loss.detach())
        names = {"text": "mlm", "image": "mrp", "table": "mem", "video": "mfp", "audio": "mam"}
        for i, m in enumerate(MODALITIES):
            pick, original = targets[m]
            pick = pick.to(device)
            if not bool(pick.any()):
                continue
            pred = model.heads[m](out[m][pick])
            if m in TOKEN:
                loss = F.cross_entropy(pred, original.to(device)[pick])
            else:
                loss = F.mse_loss(pred, original.to(device)[pick])
            total = total + weights[i, i] * loss
            parts[names[m]] = float(loss.detach())
        return total, parts


def losses(objective: nn.Module, batch: dict, generator: torch.Generator) -> tuple[torch.Tensor, dict]:
    """SIMCL total (Eq. 3) and every component loss (``cl:text-image`` ..., ``mlm``, ``mrp``, ``mem``, ``mfp``, ``mam``).

    ``objective`` is an :class:`Objective`, or the same wrapped in DistributedDataParallel; a bare
    :class:`Scale` is wrapped here.
    """
    if isinstance(objective, Scale):
        objective = Objective(objective)
    core = getattr(objective, "module", objective).model
    masked, targets = mask_batch(batch, core.cfg, generator)
    present = {m: batch[f"{m}_present"] for m in MODALITIES}
    return objective(masked, targets, present)
