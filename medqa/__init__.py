"""medqa: LoRA/QLoRA fine-tuning of small causal LMs on medical QA, with probe answers beside the loss."""
