"""Embed every image of a dataset with a frozen pretrained encoder, once, for heads fitted on a CPU in minutes.

    python train/embed.py --encoder openai/clip-vit-large-patch14 --data lamem/ --out runs/clip-l14.emb
    accelerate launch --config_file train/accelerate/multi.yaml --num_processes 2 train/embed.py \
        --encoder facebook/dinov2-base --data lamem/ --out emb
    python train/embed.py --encoder tiny-random-clip --data sample/ --out emb    # offline: random weights

ENCODER is a transformers vision model id or a local folder (CLIP, SigLIP, DINOv2, ViT, ConvNeXt, ResNet; a full
CLIP or SigLIP gives its vision tower), or tiny-random-clip: a small CLIP with seeded random weights, to try the
pipeline offline (its heads learn only what a random projection of the pictures keeps). DATA is a LaMem folder, a CSV of scored photos or a Parquet table. OUT gets
data/train-*.parquet (image_id, embedding) and embeddings_info.json (the encoder, its revision and processor).
Rerun the same command after a kill: the finished chunks in OUT.parts/ are kept. Then: train/fit_head.py.
"""

import argparse
import sys

from memorability.cli import USER_ERRORS, count
from memorability.distributed import make_accelerator
from memorability.embeddings import embed, load_encoder
from memorability.inference import TORCH_PRECISIONS
from memorability.run_output import check_writable
from memorability.runtime import tune_allocator
from memorability.sharding import CHUNK_SIZE, RunOptions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--encoder", required=True,
        help="A transformers vision model id or a local folder, or tiny-random-clip (random weights, offline).",
    )  # fmt: skip
    parser.add_argument("--data", required=True, help="LaMem folder, CSV of scored photos, Parquet table or Hub id.")
    parser.add_argument("--out", required=True, help="Folder to write the embeddings table to.")
    parser.add_argument("--flip", action="store_true", help="Average each embedding with its mirror image's (2x cost).")
    parser.add_argument("--batch-size", type=count(1), default=32)
    parser.add_argument("--precision", default="auto", choices=TORCH_PRECISIONS, help="auto: bf16 where native (default).")
    parser.add_argument("--num-workers", type=count(0), default=1, help="Processes decoding images (default: 1).")
    parser.add_argument("--chunk-size", type=count(1), default=CHUNK_SIZE, help="Images per resumable part.")
    parser.add_argument("--keep-parts", action="store_true", help="Keep OUT.parts/ after writing the table.")
    args = parser.parse_args(argv)
    tune_allocator()
    try:
        check_writable(args.out, replaced=True)
        accelerator = make_accelerator()
        encoder = load_encoder(args.encoder, accelerator.device, args.precision, args.batch_size, args.flip)
        options = RunOptions(args.num_workers, args.chunk_size, args.keep_parts)
        summary = embed(encoder, args.encoder, args.data, args.out, accelerator, options)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if summary is not None:
        print(f"Wrote {summary.out}: {summary.scored:,} images embedded, {summary.failed:,} unreadable and skipped "
              f"({summary.images_per_second:.1f} img/s, {summary.processes} process(es)).")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
