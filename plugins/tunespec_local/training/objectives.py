"""Training objectives: what the shared loop learns from a batch, and nothing else.

The loop (`loop.py`) owns everything an objective does not: data order, micro-batches
and gradient accumulation, the optimizer and schedule, precision, checkpoints and resume,
distribution and metrics logging. An objective gives it four things:

    collate(examples, packing, pad_token_id)   the tensors of one forward pass
    count(batch)                               what the step's loss is averaged over
    loss(model, batch, keeps_logits)           summed loss of the batch + summed statistics
    evaluate(model, data, config, env, ...)    validation metrics at each epoch's end

and, for objectives that need one, `prepare(model, device)` (the frozen reference model of
full preference tuning) before training starts.

- `SupervisedObjective` (`method.objective: sft`): cross-entropy on the model turns,
  averaged over every trained token of the step (see loop.py).
- `PreferenceObjective` (`method.objective: preference`): Direct Preference Optimization.
  Each pair is two sequences, prompt + preferred and prompt + non-preferred response; the
  policy's summed log-probability of each response is compared with the reference
  model's (the base with adapters disabled for peft, a frozen copy of the base for full):

      margin = (log pi(chosen) - log ref(chosen)) - (log pi(rejected) - log ref(rejected))
      sigmoid: -log sigmoid(beta * margin)          (DPO)
      ipo:     (margin_per_token - 1 / (2 beta))^2  (IPO, on per-token mean log-probabilities)
      + sft_weight * mean NLL of the chosen response's tokens  (RPO; 0 by default)

  averaged over the step's pairs. Its statistics are DPO's implicit rewards,
  beta * (log pi - log ref): their mean for each response, the reward margin, and the
  reward accuracy (the fraction of pairs whose preferred response gets the higher reward).
  These are TRL's `rewards/chosen`, `rewards/rejected`, `rewards/margins`, `rewards/accuracies`.

Both sequences of every pair of a micro-batch go through one forward: packed into one row
(padding-free, positions restarting per sequence, so no token attends to another
sequence) or padded, and only the positions that predict a response token reach the
vocabulary projection (`logits_to_keep`).
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, Sequence

from tunespec_local.encode import IGNORE_INDEX, Encoded

if TYPE_CHECKING:
    from tunespec_local.training.config import TrainConfig, TrainData


@dataclass(frozen=True, slots=True)
class EncodedPair:
    """One tokenised preference pair: prompt + preferred response, prompt + non-preferred
    response (each an `Encoded` whose labels are the response's tokens only)."""

    chosen: Encoded
    rejected: Encoded

    @property
    def trained_tokens(self) -> int:
        """Response tokens of the shorter side: a pair with nothing left of one response
        (truncated away) teaches nothing."""
        return min(self.chosen.trained_tokens, self.rejected.trained_tokens)

    def __len__(self) -> int:
        return len(self.chosen) + len(self.rejected)


class Objective(Protocol):
    name: str

    def prepare(self, model: Any, device: Any) -> None: ...

    def collate(self, examples: Sequence[Any], packing: bool, pad_token_id: int) -> dict: ...

    def count(self, batch: dict) -> float: ...

    def loss(self, model: Any, batch: dict, keeps_logits: bool) -> tuple[Any, dict[str, float]]: ...

    def step_metrics(self, sums: dict[str, float], count: float) -> dict[str, float]: ...

    def evaluate(self, model: Any, data: "TrainData", config: "TrainConfig", env: Any, keeps_logits: bool) -> dict[str, float]: ...


def objective_for(config: "TrainConfig") -> Objective:
    if config.objective == "preference":
        return PreferenceObjective(beta=config.beta, loss_type=config.preference_loss, method=config.method, sft_weight=config.sft_weight)
    if config.modality != "text":
        from tunespec_local.media.inputs import MediaInputs

        return SupervisedObjective(media=MediaInputs(config.model_path))
    return SupervisedObjective()


def forward_logits(model: Any, batch: dict, logits_to_keep: Any = None) -> Any:
    """Logits for a collated batch (only the model's inputs are passed: the loss is ours).

    `use_cache=False` is what makes packing correct: transformers derives the
    block-diagonal mask from restarting `position_ids` only when no KV cache exists; with
    the default cache every example would attend to the ones packed before it (a test
    guards this)."""
    inputs = {k: v for k, v in batch.items() if k not in LOSS_INPUTS}
    if logits_to_keep is not None:
        inputs["logits_to_keep"] = logits_to_keep
    return model(**inputs, use_cache=False).logits


LOSS_INPUTS = ("labels", "sequence", "sequence_count")
"""Batch entries that are the loss's, not the model's (everything else goes to the model:
token ids, positions or attention mask, and a multimodal batch's pixel values/features)."""


def _kept_logits(model: Any, batch: dict, keeps_logits: bool) -> tuple[Any, Any, Any]:
    """Logits at the positions that predict a trained token, with their targets and the
    batch's other per-target tensors. Position t predicts token t+1, so targets are the
    labels shifted left by one; `keep` lists the positions of any row that predict one."""
    targets = batch["labels"][:, 1:]
    if keeps_logits:
        keep = (targets != IGNORE_INDEX).any(dim=0).nonzero().squeeze(-1)
        return forward_logits(model, batch, keep), targets[:, keep], keep
    return forward_logits(model, batch)[:, :-1], targets, None


# -- supervised tuning ---------------------------------------------------------------------


class SupervisedObjective:
    """Cross-entropy on model-turn tokens; the step's loss is the mean over its trained tokens.

    `media` (multimodal data): what adds the processor's pixel values or audio features to a
    batch (tunespec_local.media.inputs). Such batches are padded, never packed: packing would
    put one example's image tokens in the same row as another example's text, and its
    restarting 1-D `position_ids` would override the 3-D rotary positions that Qwen2-VL's
    family builds from the ids, the image grids and the attention mask (a padded batch passes
    no positions, so each model makes its own)."""

    name = "sft"

    def __init__(self, media: Any = None):
        self.media = media

    def prepare(self, model: Any, device: Any) -> None:
        pass

    def collate(self, examples: Sequence[Encoded], packing: bool, pad_token_id: int) -> dict:
        from tunespec_local.training.batching import collate

        if self.media is None:
            return collate(examples, packing, pad_token_id)
        batch = collate(examples, False, pad_token_id)
        return {**batch, **self.media(examples, batch["input_ids"])}

    def count(self, batch: dict) -> float:
        return float(int((batch["labels"][:, 1:] != IGNORE_INDEX).sum()))

    def loss(self, model: Any, batch: dict, keeps_logits: bool) -> tuple[Any, dict[str, float]]:
        loss, _ = token_loss_sum(model, batch, keeps_logits)
        return loss, {}

    def step_metrics(self, sums: dict[str, float], count: float) -> dict[str, float]:
        return {}

    def evaluate(self, model: Any, data: "TrainData", config: "TrainConfig", env: Any, keeps_logits: bool) -> dict[str, float]:
        """Mean cross-entropy per trained token over the validation set (all workers)."""
        loss, tokens = _over_validation(self, model, data, config, env, keeps_logits, lambda b, _weight: token_loss_sum(model, b, keeps_logits))
        return {"eval_loss": loss / max(tokens, 1.0)}


def token_loss_sum(model: Any, batch: dict, keeps_logits: bool) -> tuple[Any, int]:
    """Summed cross-entropy over the batch's trained tokens, and their count."""
    import torch.nn.functional as F

    logits, targets, _ = _kept_logits(model, batch, keeps_logits)
    loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum")
    return loss, int((targets != IGNORE_INDEX).sum())


# -- preference tuning ---------------------------------------------------------------------


class PreferenceObjective:
    """DPO (or IPO) against a frozen reference; the step's loss is the mean over its pairs."""

    name = "preference"
    STATS = ("rewards_chosen", "rewards_rejected", "reward_margin", "reward_accuracy", "nll_chosen")

    def __init__(self, beta: float, loss_type: str = "sigmoid", method: str = "peft", sft_weight: float = 0.0):
        self.beta = beta
        self.loss_type = loss_type
        self.method = method
        self.sft_weight = sft_weight
        self.reference: Any = None

    def prepare(self, model: Any, device: Any) -> None:
        """Full tuning changes every weight, so the reference is a frozen copy of the base
        taken before training. (peft needs none: the base is the model with its adapters
        disabled.)"""
        if self.method == "full":
            self.reference = copy.deepcopy(model).eval().requires_grad_(False).to(device)

    def collate(self, pairs: Sequence[EncodedPair], packing: bool, pad_token_id: int) -> dict:
        return collate_pairs(pairs, packing, pad_token_id)

    def count(self, batch: dict) -> float:
        return float(batch["sequence_count"].item()) / 2

    def loss(self, model: Any, batch: dict, keeps_logits: bool) -> tuple[Any, dict[str, float]]:
        import torch
        import torch.nn.functional as F

        policy, lengths = sequence_logps(model, batch, keeps_logits)
        with torch.no_grad():
            reference, _ = sequence_logps(self.reference_model(model), batch, keeps_logits, self._reference_context(model))
        chosen_ratio = policy[0::2] - reference[0::2]
        rejected_ratio = policy[1::2] - reference[1::2]
        if self.loss_type == "ipo":
            # IPO on per-token means (as TRL does, after its authors): the squared loss then
            # does not scale with response length.
            delta = chosen_ratio / lengths[0::2].clamp(min=1) - rejected_ratio / lengths[1::2].clamp(min=1)
            losses = (delta - 1 / (2 * self.beta)) ** 2
        else:
            losses = -F.logsigmoid(self.beta * (chosen_ratio - rejected_ratio))
        # The chosen response's mean token NLL under the policy: logged always (it shows
        # whether DPO is making the preferred answers less likely), trained on with sft_weight.
        nll_chosen = -policy[0::2] / lengths[0::2].clamp(min=1)
        if self.sft_weight:
            losses = losses + self.sft_weight * nll_chosen
        rewards_chosen = (self.beta * chosen_ratio).detach()
        rewards_rejected = (self.beta * rejected_ratio).detach()
        stats = {
            "rewards_chosen": float(rewards_chosen.sum()),
            "rewards_rejected": float(rewards_rejected.sum()),
            "reward_margin": float((rewards_chosen - rewards_rejected).sum()),
            "reward_accuracy": float((rewards_chosen > rewards_rejected).float().sum()),
            "nll_chosen": float(nll_chosen.detach().sum()),
        }
        return losses.sum(), stats

    def reference_model(self, model: Any) -> Any:
        if self.reference is not None:
            return self.reference
        return getattr(model, "module", model)  # the PeftModel inside a DDP wrapper, called without DDP's hooks

    def _reference_context(self, model: Any) -> Any:
        if self.reference is not None:
            return contextlib.nullcontext()
        return self.reference_model(model).disable_adapter()

    def step_metrics(self, sums: dict[str, float], count: float) -> dict[str, float]:
        return {name: round(sums.get(name, 0.0) / max(count, 1.0), 6) for name in self.STATS}

    def evaluate(self, model: Any, data: "TrainData", config: "TrainConfig", env: Any, keeps_logits: bool) -> dict[str, float]:
        """The DPO loss and reward statistics over the validation pairs (all workers)."""
        sums: dict[str, float] = {}

        def one(batch: dict, weight: float) -> tuple[float, float]:
            loss, stats = self.loss(model, batch, keeps_logits)
            for name, value in stats.items():
                sums[name] = sums.get(name, 0.0) + value * weight
            return float(loss), self.count(batch)

        loss, pairs = _over_validation(self, model, data, config, env, keeps_logits, one)
        totals = env.all_reduce_sum([sums.get(name, 0.0) for name in self.STATS])
        metrics = {"eval_loss": loss / max(pairs, 1.0)}
        metrics.update({f"eval_{name}": value / max(pairs, 1.0) for name, value in zip(self.STATS, totals)})
        return metrics


def sequence_logps(model: Any, batch: dict, keeps_logits: bool, context: Any = None) -> tuple[Any, Any]:
    """Summed log-probability of each sequence's trained tokens (its response), and how
    many there are, per sequence of the batch (pair i: chosen 2i, rejected 2i+1)."""
    import torch

    with context or contextlib.nullcontext():
        logits, targets, keep = _kept_logits(model, batch, keeps_logits)
    sequence = batch["sequence"][:, 1:]
    if keep is not None:
        sequence = sequence[:, keep]
    trained = targets != IGNORE_INDEX
    logps = torch.log_softmax(logits.float(), dim=-1).gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    count = int(batch["sequence_count"].item())
    totals = torch.zeros(count, dtype=logps.dtype, device=logps.device).index_add(0, sequence[trained], logps[trained])
    lengths = torch.zeros(count, dtype=logps.dtype, device=logps.device).index_add(0, sequence[trained], torch.ones_like(logps[trained]))
    return totals, lengths


def collate_pairs(pairs: Sequence[EncodedPair], packing: bool, pad_token_id: int) -> dict:
    """Both sequences of every pair, chosen then rejected, as one forward's tensors, plus
    `sequence` (which sequence each position belongs to, -1 for padding) and
    `sequence_count`."""
    import torch

    from tunespec_local.training.batching import collate

    sequences = [s for pair in pairs for s in (pair.chosen, pair.rejected)]
    batch = collate(sequences, packing, pad_token_id)
    if packing:
        index = [i for i, s in enumerate(sequences) for _ in range(len(s))]
        batch["sequence"] = torch.tensor([index])
    else:
        width = batch["input_ids"].shape[1]
        batch["sequence"] = torch.tensor([[i] * len(s) + [-1] * (width - len(s)) for i, s in enumerate(sequences)])
    batch["sequence_count"] = torch.tensor(len(sequences))
    return batch


def _over_validation(objective: Any, model: Any, data: "TrainData", config: "TrainConfig", env: Any, keeps_logits: bool, one: Any) -> tuple[float, float]:
    """Run `one(batch, weight) -> (loss sum, count)` over this worker's share of the validation
    examples, in eval mode and without gradients; returns the sums over every worker."""
    import torch

    from tunespec_local.training.batching import micro_batches, most_micro_batches
    from tunespec_local.training.loop import autocast

    model.eval()
    share = list(range(env.rank, len(data.validation), env.world_size))
    parts = [(mb, 1.0) for mb in micro_batches(share, config.micro_batch_size)]
    padding = most_micro_batches(len(data.validation), env.world_size, config.micro_batch_size) - len(parts)
    parts += [([0], 0.0)] * padding  # zero-weighted, so every worker makes the same forwards (FSDP)
    loss_sum, count = 0.0, 0.0
    with torch.no_grad():
        for mb, weight in parts:
            batch = objective.collate([data.validation[i] for i in mb], config.packing, config.pad_token_id)
            batch = {k: v.to(env.device) for k, v in batch.items()}
            with autocast(config, env.device):
                loss, n = one(batch, weight)
            loss_sum += float(loss) * weight
            count += n * weight
    total, n = env.all_reduce_sum([loss_sum, float(count)])
    return total, n
