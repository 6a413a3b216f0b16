"""Train muse-tiny, the small GPT-2 shipped in ``muse_sdk/models/muse-tiny``.

The corpus is the running interpreter's own standard-library sources (``Lib/**/*.py``, tests
and site-packages excluded): every machine with Python has it offline, and the PSF license lets
us redistribute a model trained on it. Every 20th file is held out to report perplexity.

Reproducible: fixed seeds, a fixed file order and a fixed number of steps. On 2 CPU cores the
default run takes about 25 minutes::

    nice python scripts/train_muse_tiny.py --out muse_sdk/models/muse-tiny

Different Python versions ship different sources, so figures move slightly between them.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import sysconfig
import time
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

EOS = "<|endoftext|>"
# Tests are repetitive and the codec tables in encodings/ are hex dumps: both teach the model
# patterns nobody wants to see it write.
SKIP_PARTS = {
    "site-packages",
    "dist-packages",
    "test",
    "tests",
    "idle_test",
    "encodings",
    "__pycache__",
}
HOLD_OUT_EVERY = 20
SEED = 1234
REPETITION_PENALTY = 1.3


def corpus_files() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    return [
        path
        for path in sorted(root.rglob("*.py"))
        if not SKIP_PARTS & set(path.relative_to(root).parts)
    ]


def read_texts(files: list[Path]) -> list[str]:
    texts = []
    for path in files:
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, OSError):
            continue
    return texts


def train_tokenizer(texts: list[str], vocab_size: int) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def encode(tokenizer: Tokenizer, texts: list[str]) -> torch.Tensor:
    eos = tokenizer.token_to_id(EOS)
    ids: list[int] = []
    for encoding in tokenizer.encode_batch(texts):
        ids.extend(encoding.ids)
        ids.append(eos)
    return torch.tensor(ids, dtype=torch.long)


def lr_at(step: int, steps: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def held_out_loss(model: GPT2LMHeadModel, data: torch.Tensor, ctx: int, limit: int) -> float:
    model.eval()
    losses = []
    windows = data[: (len(data) - 1) // ctx * ctx + 1]
    for start in range(0, min(len(windows) - 1, limit * ctx), ctx):
        chunk = windows[start : start + ctx + 1].unsqueeze(0)
        losses.append(model(chunk[:, :-1], labels=chunk[:, :-1]).loss.item())
    model.train()
    return sum(losses) / len(losses)


def build_model(args: argparse.Namespace, tokenizer: Tokenizer) -> GPT2LMHeadModel:
    eos = tokenizer.token_to_id(EOS)
    config = GPT2Config(
        vocab_size=tokenizer.get_vocab_size(),
        n_positions=args.ctx,
        n_embd=args.d_model,
        n_layer=args.layers,
        n_head=args.heads,
        bos_token_id=eos,
        eos_token_id=eos,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    return GPT2LMHeadModel(config)


def train(args: argparse.Namespace) -> None:
    random.seed(SEED)
    torch.manual_seed(SEED)
    torch.set_num_threads(args.threads)
    files = corpus_files()
    train_files = [f for i, f in enumerate(files) if i % HOLD_OUT_EVERY]
    held_files = [f for i, f in enumerate(files) if not i % HOLD_OUT_EVERY]
    train_texts, held_texts = read_texts(train_files), read_texts(held_files)
    started = time.perf_counter()
    tokenizer = train_tokenizer(train_texts, args.vocab)
    train_ids, held_ids = encode(tokenizer, train_texts), encode(tokenizer, held_texts)
    print(
        f"{len(train_texts)} train files ({len(train_ids)} tokens), {len(held_texts)} held out "
        f"({len(held_ids)} tokens); tokenizer in {time.perf_counter() - started:.0f}s",
        flush=True,
    )
    model = build_model(args, tokenizer)
    print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters", flush=True)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1
    )
    sampler = torch.Generator().manual_seed(SEED)
    model.train()
    for step in range(args.steps):
        starts = torch.randint(0, len(train_ids) - args.ctx - 1, (args.batch,), generator=sampler)
        batch = torch.stack([train_ids[s : s + args.ctx] for s in starts.tolist()])
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr, args.warmup)
        loss = model(batch, labels=batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % args.log_every == 0 or step == args.steps - 1:
            elapsed = time.perf_counter() - started
            print(f"step {step} loss {loss.item():.3f} {elapsed:.0f}s", flush=True)
    held = held_out_loss(model, held_ids, args.ctx, args.eval_windows)
    elapsed = time.perf_counter() - started
    print(f"held-out loss {held:.3f} perplexity {math.exp(held):.2f}; {elapsed:.0f}s", flush=True)
    save(args, model, tokenizer, held, elapsed, len(train_ids), len(held_ids))


def save(
    args: argparse.Namespace,
    model: GPT2LMHeadModel,
    tokenizer: Tokenizer,
    held: float,
    elapsed: float,
    train_tokens: int,
    held_tokens: int,
) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # Wrap the trained object: building GPT2TokenizerFast from vocab/merges files in
    # transformers 5.x silently yields a one-token tokenizer.
    wrapped = GPT2TokenizerFast(
        tokenizer_object=tokenizer, bos_token=EOS, eos_token=EOS, unk_token=EOS
    )
    wrapped.model_max_length = args.ctx
    wrapped.save_pretrained(out)
    model.generation_config.pad_token_id = tokenizer.token_to_id(EOS)
    # A model this small loops under greedy decoding; the local provider applies this
    # penalty whenever a call leaves repetition_penalty unset.
    model.generation_config.repetition_penalty = REPETITION_PENALTY
    model.to(torch.float16).save_pretrained(out, safe_serialization=True)
    report = {
        "python": sys.version.split()[0],
        "command": " ".join(sys.argv),
        "steps": args.steps,
        "batch": args.batch,
        "context": args.ctx,
        "train_tokens": train_tokens,
        "held_out_tokens_evaluated": min(held_tokens, args.eval_windows * args.ctx),
        "held_out_loss": round(held, 4),
        "held_out_perplexity": round(math.exp(held), 2),
        "train_seconds": round(elapsed),
    }
    (out / "training.json").write_text(json.dumps(report, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="muse_sdk/models/muse-tiny")
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--ctx", type=int, default=512)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=900)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--eval-windows", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--log-every", type=int, default=50)
    train(parser.parse_args())


if __name__ == "__main__":
    main()
