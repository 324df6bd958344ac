"""medqa: LoRA/QLoRA fine-tuning of small causal LMs on medical QA, with probe answers beside the loss."""

from medqa.core.threads import passive_openmp_wait

passive_openmp_wait()  # first: every entrypoint imports this package before anything of it loads torch
