"""The comparison table's columns, shared by the console/markdown/CSV table and the HTML page."""

# (key, header, format) of the table's columns, in order.
COLUMNS = [
    ("run", "run", "s"),
    ("group", "W&B group", "s"),
    ("wikidoc", "wikidoc share", ".2f"),
    ("targets", "LoRA targets", "s"),
    ("epochs", "length", "s"),
    ("decoding", "decoding", "s"),
    ("steps", "steps", "d"),
    ("best_eval_loss", "best eval loss", ".4f"),
    ("best_eval_step", "at step", "d"),
    ("final_eval_loss", "final eval loss", ".4f"),
    ("token_accuracy", "token acc", ".4f"),
    ("kept_step", "kept step", "d"),
    ("quality_kept", "quality kept", ".3f"),
    ("heldout_kept", "held-out kept", ".3f"),
    ("quality_final", "quality final", ".3f"),
    ("eos_rate", "EOS rate", ".0%"),
    ("rep_4", "rep-4", ".3f"),
    ("flags", "flags", "s"),
]
