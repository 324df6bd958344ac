"""One fine-tuning run as named stages (medqa.training.run), the SFTTrainer builder, resume."""
