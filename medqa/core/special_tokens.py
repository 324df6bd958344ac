"""Llama 3's special tokens as text: the chat format every medqa tokenizer (embedded or hub) carries."""

BOS = "<|begin_of_text|>"
END_OF_TEXT = "<|end_of_text|>"
START_HEADER = "<|start_header_id|>"
END_HEADER = "<|end_header_id|>"
EOT = "<|eot_id|>"
PAD = "<|finetune_right_pad_id|>"  # Llama 3.2's reserved pad: no new token, no embedding resize
SPECIAL_TOKENS = [BOS, END_OF_TEXT, START_HEADER, END_HEADER, EOT, PAD]
