"""Static packs and a CUDA-graphed training step (`train.static_packs`, `train.cuda_graphs`).

A padding-free batch of TRL's collator is one row of T real tokens whose length changes every step. Here it is
padded to a bucket, the smallest multiple of `train.static_packs` tokens above T, with the remainder as one more
document: pad tokens at positions 0.., labels -100 (never scored), after every real token (so causal attention
never lets a real token see it). The cumulative sequence lengths get a fixed count (examples per step + 2, the
unused tail repeating the last offset: empty sequences) so that a step's tensors depend on the bucket only.

The step is the same function as TRL's padding-free step: the backbone, then TRL's chunked log-probabilities of
the next token (`trl.kernels.ChunkedLogProbFunction`, as `SFTTrainer` computes the loss), summed where the label
is not -100 and divided by the trainer's `num_items_in_batch`. Here every position is projected through the LM
head (TRL drops ignored rows with a boolean index, whose size changes every step); ignored ones are zeroed.

With `cuda_graphs`, forward, loss and backward of each bucket are captured once into one CUDA graph (all
buckets share one memory pool: a step's activations are freed inside its graph, so buckets do not add up) and
replayed on later steps of that bucket: one launch instead of ~1,500 small kernels launched from Python. The
LoRA gradients are the graph's outputs; each replay points `param.grad` at its bucket's. Needs CUDA, one GPU
process, gradient accumulation 1 and FlashAttention-2 varlen (`train.flash_varlen`: no block mask to build)."""

from __future__ import annotations

import types
from dataclasses import dataclass, field

import torch

PAD_STEP_DEFAULT = 512


def bucket_length(tokens: int, step: int) -> int:
    """The smallest multiple of `step` strictly above `tokens` (the padding document has at least one token)."""
    if step < 1:
        raise ValueError(f"train.static_packs={step!r}: must be >= 1 tokens")
    return (tokens // step + 1) * step


def pad_pack(batch: dict, step: int, max_docs: int, pad_id: int) -> dict:
    """TRL's padding-free `batch` (input_ids, labels, position_ids of shape (1, T), cu_seq_lens_q) padded to
    `bucket_length(T, step)` tokens with one padding document, and `cu_seq_lens` of `max_docs + 2` entries."""
    ids, labels, pos = batch["input_ids"], batch["labels"], batch["position_ids"]
    cu = batch["cu_seq_lens_q"]
    if ids.shape[0] != 1:
        raise ValueError(f"static packs need one padding-free row, got input_ids of shape {tuple(ids.shape)}")
    tokens = ids.shape[1]
    docs = cu.numel() - 1
    if docs > max_docs:
        raise ValueError(f"a pack of {docs} documents: more than the {max_docs} a step this graph was built for")
    bucket = bucket_length(tokens, step)
    rest = bucket - tokens
    cu_out = torch.full((max_docs + 2,), bucket, dtype=torch.int32, device=cu.device)
    cu_out[: docs + 1] = cu.to(torch.int32)
    return {
        "input_ids": torch.cat([ids, ids.new_full((1, rest), pad_id)], dim=1),
        "labels": torch.cat([labels, labels.new_full((1, rest), -100)], dim=1),
        "position_ids": torch.cat([pos, torch.arange(rest, dtype=pos.dtype, device=pos.device)[None]], dim=1),
        "cu_seq_lens": cu_out,
        "real_tokens": tokens,
    }


def step_loss(model, input_ids, position_ids, labels, cu_seq_lens, max_len: int, num_items) -> torch.Tensor:
    """TRL's padding-free loss of a (PEFT-wrapped) causal LM on one packed row: -Σ log p(next token) over labels
    that are not -100, over `num_items`; every position goes through the LM head (static shapes)."""
    from trl.kernels import ChunkedLogProbFunction
    from trl.trainer.utils import _CHUNKED_LOGPROB_CHUNK_SIZE

    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    backbone = causal_lm.model
    out = backbone(
        input_ids=input_ids, position_ids=position_ids, use_cache=False,
        cu_seq_lens_q=cu_seq_lens, cu_seq_lens_k=cu_seq_lens, max_length_q=max_len, max_length_k=max_len,
    )  # fmt: skip
    hidden = out.last_hidden_state[:, :-1]
    targets = labels[:, 1:].reshape(-1)
    mask = targets != -100
    head = causal_lm.get_output_embeddings()
    config = causal_lm.config.get_text_config()
    log_probs = ChunkedLogProbFunction.apply(
        hidden.reshape(-1, hidden.shape[-1]), head.weight, head.bias, targets.clamp(min=0), 1.0,
        _CHUNKED_LOGPROB_CHUNK_SIZE, getattr(config, "final_logit_softcapping", None),
        getattr(config, "logit_scale", None) or 1.0, ("log_probs",),
    )[0]  # fmt: skip
    return -log_probs.masked_fill(~mask, 0).sum() / num_items


@dataclass
class _Graph:
    graph: object
    inputs: dict
    loss: torch.Tensor
    grads: list


@dataclass
class StaticStep:
    """One training step over static packs of `step` tokens, eager or (`graphs`) replayed from CUDA graphs."""

    model: torch.nn.Module
    step: int
    max_docs: int
    pad_id: int
    dtype: torch.dtype | None  # autocast dtype (None: no autocast)
    graphs: bool = False
    warmup: int = 2
    _captured: dict = field(default_factory=dict)
    _pool: object = None
    steps: dict = field(default_factory=lambda: {"eager": 0, "captured": 0, "replayed": 0})
    tokens: dict = field(default_factory=lambda: {"real": 0, "computed": 0})  # computed: padding included

    def _params(self) -> list:
        return [p for p in self.model.parameters() if p.requires_grad]

    def _loss(self, inputs: dict, num_items) -> torch.Tensor:
        device = inputs["input_ids"].device.type
        # no cast cache: a capture must not keep casts of the LoRA weights made before it (torch.cuda.graph docs)
        with torch.autocast(
            device, dtype=self.dtype or torch.float32, enabled=self.dtype is not None, cache_enabled=False
        ):
            return step_loss(
                self.model, inputs["input_ids"], inputs["position_ids"], inputs["labels"], inputs["cu_seq_lens"],
                inputs["input_ids"].shape[1], num_items,
            )  # fmt: skip

    def __call__(self, batch: dict, num_items) -> tuple[torch.Tensor, int]:
        """Forward, loss and backward of `batch`; LoRA gradients end in `param.grad`. Returns (loss, real tokens)."""
        packed = pad_pack(batch, self.step, self.max_docs, self.pad_id)
        real = packed.pop("real_tokens")
        self.tokens["real"] += real
        self.tokens["computed"] += packed["input_ids"].shape[1]
        device = packed["input_ids"].device
        items = torch.as_tensor(num_items if num_items is not None else (packed["labels"][:, 1:] != -100).sum())
        items = items.to(device=device, dtype=torch.float32).clamp(min=1)
        if not self.graphs:
            self.steps["eager"] += 1
            loss = self._loss(packed, items)
            loss.backward()
            return loss.detach(), real
        bucket = packed["input_ids"].shape[1]
        entry = self._captured.get(bucket)
        if entry is None:
            entry = self._capture(packed, items)
            self._captured[bucket] = entry
            self.steps["captured"] += 1
        else:
            self.steps["replayed"] += 1
        for key, value in packed.items():
            entry.inputs[key].copy_(value, non_blocking=True)
        entry.inputs["num_items"].copy_(items, non_blocking=True)
        entry.graph.replay()
        for param, grad in zip(self._params(), entry.grads, strict=True):
            param.grad = grad
        return entry.loss.detach().clone(), real

    def _capture(self, packed: dict, items: torch.Tensor) -> _Graph:
        """Warm up on a side stream (Triton and cuBLAS set themselves up outside the capture), then capture
        forward, loss and backward into one graph whose inputs are static copies of this bucket's tensors."""
        static = {k: v.clone() for k, v in packed.items()}
        static["num_items"] = items.clone()
        params = self._params()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.warmup):
                for param in params:
                    param.grad = None
                self._loss(static, static["num_items"]).backward()
        torch.cuda.current_stream().wait_stream(side)
        for param in params:
            param.grad = None
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        # thread_local: the DataLoader's pin-memory thread may allocate while this thread captures
        with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
            loss = self._loss(static, static["num_items"])
            loss.backward()
        grads = [param.grad for param in params]
        if any(g is None for g in grads):
            raise RuntimeError("a trainable parameter got no gradient inside the captured step")
        for param in params:
            param.grad = None
        return _Graph(graph, static, loss, grads)


def install_static_step(trainer, step: int, graphs: bool) -> StaticStep | None:
    """Replace `trainer.training_step` (TRL's SFTTrainer, padding-free, one process, no gradient accumulation)
    by a `StaticStep`; batches it cannot take (not packed, another shape) go to the trainer's own step. Under
    several processes (DDP) it changes nothing and returns None."""
    args = trainer.args
    if args.gradient_accumulation_steps != 1:
        raise ValueError("train.static_packs: needs train.grad_accum=1 (or train.static_packs=0)")
    if args.world_size != 1:  # DDP reduces gradients in the wrapped forward/backward, which this step bypasses
        print(f"train.static_packs: not used with {args.world_size} processes; TRL's own step trains", flush=True)
        return None
    if graphs and not torch.cuda.is_available():
        raise ValueError("train.cuda_graphs=true: needs a CUDA GPU")
    dtype = torch.bfloat16 if args.bf16 else torch.float16 if args.fp16 else None
    pad_id = trainer.processing_class.pad_token_id
    runner = StaticStep(trainer.model, step, args.per_device_train_batch_size, pad_id, dtype, graphs)
    own_step = trainer.training_step

    def training_step(self, model, inputs, num_items_in_batch=None):
        if "cu_seq_lens_q" not in inputs or inputs["input_ids"].shape[0] != 1:
            return own_step(model, inputs, num_items_in_batch)
        model.train()
        inputs = self._prepare_inputs(inputs)
        loss, real = runner(inputs, num_items_in_batch)
        # TRL's own step counts the tokens it logs (num_tokens); its entropy and accuracy metrics are not computed
        self._total_train_tokens += real
        self._metrics["train"]["num_tokens"] = [self._total_train_tokens]
        return loss

    trainer.training_step = types.MethodType(training_step, trainer)
    trainer.static_step = runner  # its step and token counts, for the benchmarks
    return runner
