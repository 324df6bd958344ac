"""The base model and tokenizer, LoRA and quantization, fused LoRA kernels, generation; tiny/: the embedded base."""
