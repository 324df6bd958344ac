"""Does torchtune's LoRA import and run on this machine's torch (issue 19's peer question)? Imports torchtune and its
single-device LoRA recipe, builds `lora_llama3_2_3b` (r16/α32, dropout 0.05, q/k/v/o + MLP) with random bf16 weights
on the GPU and runs forward + backward on one 512-token sequence. Prints one line `RESULT {json}`; an import or run
failure is the result (with its last traceback lines). Not a throughput row: no recipe loop, no packing.

    python benchmarks/torchtune_check.py
"""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path


def _load_recipe() -> None:
    """Execute the single-device LoRA recipe's module (its imports are part of the check). torchtune's `recipes`
    folder refuses `import recipes.x` by design (they are run by `tune run`), so it is loaded from its file."""
    import importlib.util

    import torchtune

    path = Path(torchtune.__file__).resolve().parent.parent / "recipes" / "lora_finetune_single_device.py"
    spec = importlib.util.spec_from_file_location("lora_finetune_single_device", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


def check() -> dict:
    """Each stage's outcome and seconds, stopping at the first failure."""
    out: dict = {}
    started = time.time()
    try:
        import torch
        import torchtune

        out["versions"] = {"torchtune": torchtune.__version__, "torch": torch.__version__}
        _load_recipe()
        from torchtune.models.llama3_2 import lora_llama3_2_3b
        from torchtune.modules.peft import get_adapter_params, set_trainable_params

        out["import_s"] = round(time.time() - started, 1)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        with torch.device(device):
            model = lora_llama3_2_3b(
                lora_attn_modules=["q_proj", "k_proj", "v_proj", "output_proj"], apply_lora_to_mlp=True,
                lora_rank=16, lora_alpha=32, lora_dropout=0.05,
            ).to(torch.bfloat16)  # fmt: skip
        set_trainable_params(model, get_adapter_params(model))
        out["trainable"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
        out["params"] = sum(p.numel() for p in model.parameters())
        tokens = torch.randint(0, 4096, (1, 512), device=device)
        t0 = time.time()
        logits = model(tokens)
        loss = torch.nn.functional.cross_entropy(logits[0, :-1].float(), tokens[0, 1:])
        loss.backward()
        if device == "cuda":
            torch.cuda.synchronize()
        out["forward_backward_s"] = round(time.time() - t0, 2)
        out["loss"] = round(loss.item(), 4)
        out["ok"] = True
    except Exception as err:  # noqa: BLE001 - the failure is the result
        out["ok"] = False
        out["error"] = f"{type(err).__name__}: {err}"[:600]
        out["trace"] = " | ".join(traceback.format_exc().strip().splitlines()[-6:])[-1200:]
    out["wall_s"] = round(time.time() - started, 1)
    return out


if __name__ == "__main__":
    print("RESULT " + json.dumps(check()), flush=True)
