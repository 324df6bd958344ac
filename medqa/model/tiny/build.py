"""Build the embedded base model (`model=tiny`): a small LlamaForCausalLM with a Llama-3-style tokenizer,
briefly pretrained (full weights) on plain text rendered from the shipped knowledge table.

The pretraining text is textbook prose plus forum- and encyclopedia-style QA rendered afresh (another seed,
every shipped row removed) as chats: like Llama-3.2-3B-Instruct for the seed, the base already answers in
turns, having read text of the kind it will be tuned on but never the fine-tuning rows themselves.
The default recipe's model ships inside the package (medqa/assets/base/tiny: the same weights on every
machine); any other recipe is built on first use and cached on disk under its key (recipe_key).

    python -m medqa.build_base            # find (shipped or cached) or build the recipe, print where it lives
    python -m medqa.build_base --force    # rebuild into a fresh cache folder
    python -m medqa.build_base --ship     # rebuild the shipped copy (after changing conf/model/tiny.yaml)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
import shutil
import tempfile
import time
from pathlib import Path

from medqa.core.cpu_precision import cpu_precision, precision_record
from medqa.core.errors import ConfigError
from medqa.core.paths import ASSETS, KNOWLEDGE_FILE, QA_FILES, cache_root
from medqa.data.embedded.corpus import chatdoctor_rows, wikidoc_rows
from medqa.data.embedded.phrasing import load_knowledge
from medqa.model.tokenizer import END_OF_TEXT, EOT, train_tokenizer
from medqa.settings.model import TinyRecipe

SHIPPED_DIR = ASSETS / "base" / "tiny"  # the default recipe, built once (python -m medqa.build_base --ship)

# Bump when a code change alters the weights a recipe builds (this file, medqa/model/tokenizer.py, the
# corpus renderers in medqa/data/embedded/): it is part of every recipe_key, so
# cached builds are redone, and tests/test_shipped_base.py then asks for the shipped copy to be rebuilt.
# Edits that leave the weights alone (comments, messages, refactors) need no bump and trigger no rebuild.
BUILDER_VERSION = 2
# Weights are stored in bf16 and loaded as fp32 (model.dtype): half the bytes of fp32 in git and on disk, and the
# stored values are the model, so every machine computes from the very same fp32 numbers.
STORED_DTYPE = "bfloat16"


def build_precision(recipe: TinyRecipe) -> str:
    """The precision this machine builds `recipe` in: a bf16 recipe builds in fp32 without native bf16."""
    return cpu_precision(recipe.precision)


def inputs_hash() -> str:
    """Hash of what determines the weights besides the recipe: the shipped text the build reads and the
    builder's version (not the builder's source: see BUILDER_VERSION)."""
    h = hashlib.sha256(f"builder {BUILDER_VERSION} {STORED_DTYPE}".encode())
    for path in (KNOWLEDGE_FILE, *QA_FILES):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def recipe_key(recipe: TinyRecipe) -> str:
    """Names a build by what determines its weights: the recipe (its precision as this machine would build it,
    so a bf16 recipe falling back to fp32 shares the fp32 build) and `inputs_hash()`."""
    fields = {**dataclasses.asdict(recipe), "precision": build_precision(recipe)}
    h = hashlib.sha256(json.dumps(fields, sort_keys=True).encode())
    h.update(inputs_hash().encode())
    return h.hexdigest()[:16]


def shipped_base(recipe: TinyRecipe) -> Path | None:
    """The shipped model's folder when it is `recipe`'s build (same key), else None. Read-only use."""
    info = SHIPPED_DIR / "build_info.json"
    if not info.exists():
        return None
    return SHIPPED_DIR if json.loads(info.read_text()).get("key") == recipe_key(recipe) else None


def ensure_base(recipe: TinyRecipe, cache_dir: Path | None = None, skip_shipped: bool = False) -> Path:
    """Return the folder of the base model for `recipe`: the shipped one for the default recipe (no lock, no
    write: works from a read-only install), else the cached build, building it first if it is not cached.
    `skip_shipped`: the cache even for the default recipe (a rebuild to compare with the shipped copy)."""
    from filelock import FileLock

    shipped = None if skip_shipped else shipped_base(recipe)
    if shipped is not None:
        return shipped
    root = (cache_dir or cache_root()) / "base"
    key = recipe_key(recipe)
    target = root / f"tiny-{key}"
    if (target / "build_info.json").exists():  # built and complete (renamed into place whole): just load it,
        return target  # even from a read-only cache, where the build lock could not be taken
    try:
        root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(target) + ".lock"):  # two runs starting together build once
            if not (target / "build_info.json").exists():
                build_base(recipe, target, key)
    except PermissionError as err:  # a read-only cache without this recipe's model
        raise ConfigError(
            f"{root}: cannot build the embedded base model there ({err.strerror}); set MEDQA_CACHE to a writable "
            "folder, or build it once where the cache is writable"
        ) from None
    return target


def textbook_documents(knowledge: list[dict], rng: random.Random, variants: int) -> list[str]:
    """Render each condition of the knowledge table as `variants` short encyclopedic paragraphs."""
    openers = [
        "{Name} is a common condition. {summary}",
        "{summary}",
        "About {name}: {summary}",
        "{Name}. {summary}",
    ]
    parts = {
        "symptoms": [
            "Typical symptoms of {name} include {items}.",
            "People with {name} often notice {items}.",
            "{Name} can cause {items}.",
        ],
        "early_symptoms": ["Early signs of {name} are {items}.", "In the early stage, {name} may show {items}."],
        "causes": ["{Name} is caused by or linked to {items}.", "Causes and risk factors of {name} include {items}."],
        "diagnosis": ["Doctors diagnose {name} with {items}.", "Useful tests for {name} are {items}."],
        "treatment": ["Treatment of {name} includes {items}.", "{Name} is treated with {items}."],
        "first_line": ["The first-line treatment for {name} is {items}.", "First-line therapy for {name}: {items}."],
        "warning_signs": ["Seek urgent care for {name} if there is {items}.", "Warning signs of {name} are {items}."],
        "prevention": ["{Name} can be prevented by {items}.", "To lower the risk of {name}, {items} help."],
    }
    docs = []
    for cond in knowledge:
        name = cond["name"]
        for _ in range(variants):
            fill = {"name": name, "Name": name[:1].upper() + name[1:], "summary": cond["summary"]}
            sentences = [rng.choice(openers).format(**fill)]
            for key in rng.sample(list(parts), k=len(parts)):
                items = list(cond.get(key) or [])
                if not items:
                    continue
                rng.shuffle(items)
                items = items[: rng.randint(min(2, len(items)), len(items))]
                joined = items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
                sentences.append(rng.choice(parts[key]).format(items=joined, **fill))
            docs.append(" ".join(sentences))
    return docs


def _qa_text(row: dict) -> str:
    return f"{row['input']}\n\n{row['output']}"


def _chat(row: dict) -> list[dict]:
    return [
        {"role": "system", "content": row["instruction"]},
        {"role": "user", "content": row["input"]},
        {"role": "assistant", "content": row["output"]},
    ]


def shipped_qa_texts() -> list[str]:
    """The shipped fine-tuning rows as plain text (question, blank line, answer)."""
    return [_qa_text(json.loads(line)) for path in QA_FILES for line in path.read_text(encoding="utf-8").splitlines()]


def pretraining_documents(knowledge: list[dict], seed: int, variants: int) -> tuple[list[str], list[list[dict]]]:
    """(prose, chats): textbook paragraphs, and QA rows rendered afresh as chats, none of them a shipped row.

    The chats make the base an instruct-style model, as Llama-3.2-3B-Instruct is for the seed: it already
    answers in turns at step 0, and fine-tuning adapts it to the mix rather than teaching the format."""
    rng = random.Random(f"pretrain:{seed}")  # not the corpus generator's seed: other renderings
    shipped = set(shipped_qa_texts())
    fresh = [r for r in chatdoctor_rows(knowledge, rng) + wikidoc_rows(knowledge, rng) if _qa_text(r) not in shipped]
    return textbook_documents(knowledge, rng, variants), [_chat(r) for r in fresh]


def build_base(recipe: TinyRecipe, target: Path, key: str) -> dict:
    """Train the tokenizer, pretrain the model and save both (plus build_info.json) into `target`."""
    import torch
    from tqdm.auto import tqdm
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, get_cosine_schedule_with_warmup

    started = time.time()
    precision = build_precision(recipe)
    prose, chats = pretraining_documents(load_knowledge(KNOWLEDGE_FILE), recipe.seed, recipe.textbook_variants)
    corpus_sha256 = hashlib.sha256(json.dumps([prose, chats]).encode()).hexdigest()[:16]
    # The vocabulary covers all shipped text, so fine-tuning data tokenizes as compactly as pretraining text.
    texts = prose + [m["content"] for chat in chats for m in chat] + shipped_qa_texts()
    tokenizer = train_tokenizer(texts, recipe.vocab_size)

    end_of_text = tokenizer.convert_tokens_to_ids(END_OF_TEXT)
    docs = [[tokenizer.bos_token_id, *tokenizer(d, add_special_tokens=False)["input_ids"], end_of_text] for d in prose]
    # The chat template emits BOS itself and each chat ends on <|eot_id|>, as the model must learn to.
    docs += [tokenizer.apply_chat_template(c, tokenize=True, return_dict=True)["input_ids"] for c in chats]
    random.Random(recipe.seed).shuffle(docs)
    stream = [token for doc in docs for token in doc]
    n_chunks = len(stream) // recipe.seq_len
    chunks = torch.tensor(stream[: n_chunks * recipe.seq_len]).view(n_chunks, recipe.seq_len)

    torch.manual_seed(recipe.seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=recipe.hidden_size,
        intermediate_size=recipe.intermediate_size,
        num_hidden_layers=recipe.num_layers,
        num_attention_heads=recipe.num_heads,
        num_key_value_heads=recipe.num_kv_heads,
        max_position_embeddings=recipe.max_position_embeddings,
        rope_theta=500000.0,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.convert_tokens_to_ids(EOT),
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, betas=(0.9, 0.95), weight_decay=0.1)
    schedule = get_cosine_schedule_with_warmup(optimizer, recipe.warmup_steps, recipe.pretrain_steps)
    order = torch.Generator().manual_seed(recipe.seed)
    losses = []
    model.train()
    bar = tqdm(range(recipe.pretrain_steps), desc="pretraining embedded base model", unit="step")
    for _ in bar:
        batch = chunks[torch.randint(0, n_chunks, (recipe.batch_size,), generator=order)]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.3f}")

    final_loss = sum(losses[-20:]) / len(losses[-20:])
    info = {
        "recipe": dataclasses.asdict(recipe),
        "key": key,
        "builder_version": BUILDER_VERSION,
        "inputs_hash": inputs_hash(),
        "corpus_sha256": corpus_sha256,  # the rendered pretraining text: tests catch a renderer change
        **precision_record(recipe.precision, precision),
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(tokenizer),
        "pretrain_tokens": n_chunks * recipe.seq_len,
        "tokens_seen": recipe.pretrain_steps * recipe.batch_size * recipe.seq_len,
        "first_loss": losses[0],
        "final_loss": final_loss,
        "final_perplexity": math.exp(final_loss),
        "loss_curve": losses[:: max(1, len(losses) // 50)],
        "seconds": round(time.time() - started, 1),
        "torch_threads": torch.get_num_threads(),
        "stored_dtype": STORED_DTYPE,
    }
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[tokenizer.convert_tokens_to_ids(EOT), tokenizer.convert_tokens_to_ids(END_OF_TEXT)],
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    # Written to a temporary sibling and renamed, so an interrupted build never leaves a half model in the cache.
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".partial-", dir=target.parent))
    model.to(getattr(torch, STORED_DTYPE)).save_pretrained(tmp)
    # The stored values are bf16, but the model is their fp32 upcast: plain `from_pretrained` (dtype "auto")
    # must load fp32 too, or it computes a different model than medqa does.
    config = json.loads((tmp / "config.json").read_text())
    (tmp / "config.json").write_text(json.dumps({**config, "dtype": "float32"}, indent=2) + "\n")
    tokenizer.save_pretrained(tmp)
    (tmp / "build_info.json").write_text(json.dumps(info, indent=2))
    if target.exists():
        shutil.rmtree(target)  # only ever an incomplete build of this same key (no build_info.json)
    tmp.rename(target)
    return info
