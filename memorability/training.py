"""The training loop, on one Accelerator: CPU or GPU, one or many processes, mixed precision, resumable.

train/train.py is a thin command line over `train()`.
"""

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator, DataLoaderConfiguration
from accelerate.utils import gather_object, set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .data import load_lamem
from .errors import MemorabilityError
from .distributed import make_accelerator
from .evaluation import score_split
from .inference import MemorabilityPredictor
from .metrics import few_images_note, regression_metrics
from .presets import backbone_processor, build_model
from .run_output import check_writable
from .runtime import cpu_has_fast_bf16
from .training_args import TrainingArguments
from .transforms import collate_batch, prepare_for_model

STATES_DIR = "checkpoints"
BEST_DIR = "best"
LAST_DIR = "last"  # kept instead of best/ when no epoch had a finite validation ρ
RESULTS_FILE = "train_results.json"
HISTORY_FILE = "metrics.jsonl"


class TrainingError(MemorabilityError, RuntimeError):
    """A training run that cannot start or go on; the message says why and what to do."""


@dataclass
class TrainerState:
    """Progress that `save_state` must carry besides weights and optimizer: where we are and the best so far."""

    step: int = 0
    best_spearman: float = -math.inf
    best_epoch: int = -1  # -1 until an epoch has a finite validation ρ: a NaN is never the best
    best_n: int = 0
    skipped_ids: list[str] = field(default_factory=list)  # unreadable training images, each once however many epochs
    history: list[dict] = field(default_factory=list)

    def state_dict(self) -> dict:
        return dict(vars(self))

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)


def resolve_mixed_precision(choice: str) -> str:
    """accelerate's mixed_precision for our 'auto': bf16 where the hardware computes it natively, else fp32."""
    if choice != "auto":
        return choice
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_fast_bf16() else "no"


def build_accelerator(args: TrainingArguments) -> Accelerator:
    return make_accelerator(
        mixed_precision=resolve_mixed_precision(args.mixed_precision),
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        log_with=None if args.report_to == "none" else args.report_to,
        project_dir=args.output_dir,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )


def check_output_dir(args: TrainingArguments) -> Path:
    """Refuse to mix two runs in one folder: a new run needs --overwrite, --resume needs a saved state."""
    output = Path(args.output_dir)
    has_run = output.is_dir() and any((output / name).exists() for name in (STATES_DIR, BEST_DIR, RESULTS_FILE))
    if args.resume and not latest_state(output):
        raise TrainingError(f"Nothing to resume in {output}: it holds no saved state under {STATES_DIR}/.")
    if has_run and not (args.resume or args.overwrite):
        raise TrainingError(f"{output} already holds a run; pass --resume to continue it or --overwrite to replace it.")
    check_writable(output)
    return output


def check_splits(splits, data) -> None:
    """Refuse data that leaves a split without images: nothing to learn from, to pick an epoch by, or to test on."""
    sizes = {name: len(split) for name, split in splits.items()}
    if min(sizes.values(), default=0) == 0:
        found = ", ".join(f"{name} {size}" for name, size in sizes.items())
        raise TrainingError(
            f"{data} gives a split no image ({found}): training needs at least one image in each of train, validation "
            "and test; add photos (a seeded 80/10/10 split needs at least 8) or give a split column."
        )


def remove_run(output: Path) -> None:
    """Delete what an earlier run left in `output` (for --overwrite), and nothing else."""
    for name in (STATES_DIR, BEST_DIR, LAST_DIR):
        shutil.rmtree(output / name, ignore_errors=True)
    for name in (RESULTS_FILE, HISTORY_FILE):
        (output / name).unlink(missing_ok=True)


def latest_state(output: Path) -> Path | None:
    """The most recent saved state folder (checkpoints/step_N), if any."""
    states = saved_states(output)
    return states[-1] if states else None


def saved_states(output: Path) -> list[Path]:
    """Complete saved states, oldest first (a `.partial` folder is an interrupted save and is ignored)."""
    complete = [path for path in (output / STATES_DIR).glob("step_*") if path.name.split("_")[1].isdigit()]
    return sorted(complete, key=lambda path: int(path.name.split("_")[1]))


def cosine_with_warmup(total_steps: int, warmup_steps: int, frozen_steps: int = 0):
    """LR multiplier per step: linear warmup then cosine decay; 0 during the first `frozen_steps` (frozen layers)."""

    def multiplier(step: int) -> float:
        if step < frozen_steps:
            return 0.0
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return multiplier


def make_loader(dataset, batch_size: int, shuffle: bool, args: TrainingArguments) -> DataLoader:
    # An explicit generator keeps DataLoader iterators from drawing on the global RNG, so a resumed run's dropout
    # sees exactly the random numbers the uninterrupted run saw.
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=args.num_workers,
        collate_fn=collate_batch,
        generator=torch.Generator().manual_seed(args.seed),
        persistent_workers=False,
    )


def save_model(accelerator: Accelerator, model, processor, folder: Path) -> None:
    """save_pretrained (model.safetensors + config.json) and the processor beside it, from the main process."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        accelerator.unwrap_model(model).save_pretrained(folder, safe_serialization=True)
        processor.save_pretrained(folder)
    accelerator.wait_for_everyone()


def record_skipped(state: TrainerState, pending: list[str]) -> None:
    """Add the images every process found unreadable since the last call to the run's set of them (an image
    unreadable in every epoch is one image), and empty `pending`. All processes must call it together."""
    state.skipped_ids = sorted(set(state.skipped_ids).union(gather_object(list(pending))))
    pending.clear()


def skipped_note(skipped_ids: list[str], shown: int = 5) -> str:
    """The end of an epoch's log line: how many images were unreadable, and which."""
    if not skipped_ids:
        return ""
    more = ", ..." if len(skipped_ids) > shown else ""
    return f"; skipped {len(skipped_ids)} unreadable image(s): {', '.join(skipped_ids[:shown])}{more}"


def save_training_state(accelerator: Accelerator, output: Path, step: int, keep: int) -> None:
    """A resumable state (weights, optimizer, scheduler, RNGs, TrainerState); older ones beyond `keep` removed."""
    final = output / STATES_DIR / f"step_{step}"
    partial = final.with_name(final.name + ".partial")
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)  # a kill during saving leaves a .partial folder, never a half-written state
        for stale in saved_states(output)[:-keep]:
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()


def validate(accelerator: Accelerator, model, processor, dataset, args: TrainingArguments) -> dict[str, float]:
    """The validation metrics of the model as it stands, scored as users will score it: the predictor's fast copy in
    the run's precision, through the one batch engine, over every process."""
    precision = {"no": "fp32", "bf16": "bf16", "fp16": "fp16"}[accelerator.mixed_precision]
    predictor = MemorabilityPredictor(
        accelerator.unwrap_model(model), processor, accelerator.device, precision, args.eval_batch_size
    )
    scores = score_split(predictor, dataset, accelerator, "validation", args.num_workers)
    return regression_metrics(scores.predicted, scores.human)


def train(args: TrainingArguments) -> dict:
    """Train, validate every epoch, keep the best model by validation Spearman ρ; returns the run's summary."""
    output = check_output_dir(args)
    accelerator = build_accelerator(args)
    set_seed(args.seed)
    is_main = accelerator.is_local_main_process
    if accelerator.is_main_process and args.overwrite and not args.resume:
        remove_run(output)
    output.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()

    splits = load_lamem(args.data, split=args.split)
    check_splits(splits, args.data)
    processor = backbone_processor(args.backbone, args.image_size)
    model = build_model(args.backbone, args.backbone_weights, head_dropout=args.head_dropout)
    train_loader = make_loader(prepare_for_model(splits["train"], processor, train=args.augment), args.batch_size, True, args)

    steps_per_epoch = math.ceil(math.ceil(len(splits["train"]) / (args.batch_size * accelerator.num_processes)) / args.gradient_accumulation_steps)
    total_steps = args.epochs * steps_per_epoch
    if args.max_steps:
        total_steps = min(total_steps, args.max_steps)
    optimizer = torch.optim.AdamW(
        [
            {"params": model.backbone.parameters(), "lr": args.backbone_learning_rate},
            {"params": model.head.parameters(), "lr": args.learning_rate},
        ],
        weight_decay=args.weight_decay,
    )
    warmup = round(args.warmup_ratio * total_steps)
    frozen = args.freeze_backbone_epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, [cosine_with_warmup(total_steps, warmup, frozen), cosine_with_warmup(total_steps, warmup)]
    )
    model, optimizer, train_loader, scheduler = accelerator.prepare(model, optimizer, train_loader, scheduler)
    state = TrainerState()
    accelerator.register_for_checkpointing(state)
    if args.resume:
        accelerator.load_state(str(latest_state(output)))
    if args.report_to != "none":
        accelerator.init_trackers("memorability", config={k: v for k, v in args.to_dict().items() if v is not None})

    start_epoch, done_in_epoch = divmod(state.step, steps_per_epoch)
    progress = tqdm(total=total_steps, initial=state.step, desc="training", disable=not is_main)
    images_seen, train_seconds = 0, 0.0
    for epoch in range(start_epoch, args.epochs):
        if state.step >= total_steps:
            break
        model.train()
        if epoch < args.freeze_backbone_epochs:
            accelerator.unwrap_model(model).backbone.eval()  # frozen: keep BatchNorm statistics too
        train_loader.set_epoch(epoch)
        batches = train_loader
        if epoch == start_epoch and done_in_epoch:
            batches = accelerator.skip_first_batches(train_loader, done_in_epoch * args.gradient_accumulation_steps)
        pending_skipped: list[str] = []
        tick = time.perf_counter()
        for batch in batches:
            pending_skipped += batch["skipped"]
            with accelerator.accumulate(model):
                if len(batch["labels"]):
                    loss = model(pixel_values=batch["pixel_values"], labels=batch["labels"]).loss
                else:  # every image of this batch was unreadable: a zero loss keeps all processes in step
                    loss = sum(parameter.sum() for parameter in model.parameters()) * 0.0
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            images_seen += len(batch["labels"]) * accelerator.num_processes
            if accelerator.sync_gradients:
                state.step += 1
                progress.update(1)
                progress.set_postfix(loss=f"{loss.item():.4f}")
                accelerator.log({"train/loss": loss.item(), "train/lr_head": scheduler.get_last_lr()[1]}, step=state.step)
                if state.step % args.save_steps == 0:
                    record_skipped(state, pending_skipped)
                    save_training_state(accelerator, output, state.step, args.keep_states)
                if state.step >= total_steps:
                    break
        train_seconds += time.perf_counter() - tick
        record_skipped(state, pending_skipped)
        metrics = validate(accelerator, model, processor, splits["validation"], args)
        record = {"epoch": epoch, "step": state.step, **{f"val_{k}": v for k, v in metrics.items()}}
        state.history.append(record)
        accelerator.log({f"val/{k}": v for k, v in metrics.items() if k != "n"}, step=state.step)
        if is_main:
            few = few_images_note(metrics["n"])
            tqdm.write(
                f"epoch {epoch}: val Spearman {metrics['spearman']:.4f}, Pearson {metrics['pearson']:.4f}, "
                f"MSE {metrics['mse']:.5f} on {metrics['n']} images" + (f" (warning: {few})" if few else "")
                + skipped_note(state.skipped_ids)
            )
        if math.isfinite(metrics["spearman"]) and metrics["spearman"] > state.best_spearman:
            state.best_spearman, state.best_epoch, state.best_n = metrics["spearman"], epoch, metrics["n"]
            save_model(accelerator, model, processor, output / BEST_DIR)
        if accelerator.is_main_process:
            (output / HISTORY_FILE).write_text("".join(json.dumps(item) + "\n" for item in state.history))
        save_training_state(accelerator, output, state.step, args.keep_states)
    progress.close()
    if state.best_epoch < 0 and state.history:  # no epoch could be judged: the last one is kept, and named so
        save_model(accelerator, model, processor, output / LAST_DIR)
        if is_main:
            tqdm.write(f"No epoch had a finite validation Spearman ρ (constant predictions, or fewer than 2 validation "
                       f"images): kept the last epoch, unjudged, in {output / LAST_DIR}.")  # fmt: skip
    summary = {
        "data": args.data,
        "split": args.split,
        "num_processes": accelerator.num_processes,
        "mixed_precision": accelerator.mixed_precision,
        "steps": state.step,
        "best_epoch": state.best_epoch if state.best_epoch >= 0 else None,
        "best_val_spearman": state.best_spearman if state.best_epoch >= 0 else None,
        "best_val_n": state.best_n if state.best_epoch >= 0 else None,
        "kept": BEST_DIR if state.best_epoch >= 0 else LAST_DIR,
        "skipped_images": len(state.skipped_ids),
        "train_images_per_second": images_seen / train_seconds if train_seconds else None,
        "history": state.history,
        "arguments": args.to_dict(),
    }
    if accelerator.is_main_process:
        (output / RESULTS_FILE).write_text(json.dumps(summary, indent=2))
    accelerator.end_training()
    return summary
