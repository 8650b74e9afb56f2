"""``explorer train-inpainter DIR [--epochs N ...] [--resume CKPT] [--out CKPT] [--device cuda]``: train the
project's learned in-painter (the ``learned`` in-filler) on a folder of photos. The training itself is
``explorer.methods.inpainting.train``; this module reads the options and prints the progress (the options and
the loop it shares with train-explainer are ``cli/training.py``)."""

from __future__ import annotations

import sys
import time

from explorer.cli.training import add_loop_args, help_defaults, run_loop, skipped_files_as_lines
from explorer.core import argtypes as T

SETTINGS = ("epochs", "batch_size", "lr", "size", "width", "edge", "seed", "hold_out_every")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train-inpainter", help="train the learned in-painter (infill=learned) on a folder of photos",
        description="Train the small U-Net in-painter that fills the holes FIDO, extremal perturbations and "
                    "RISE cut into an image (docs/methods.md §2.2), on a folder of photos (any layout, searched "
                    "recursively; no labels). Every --hold-out-every-th photo of the sorted folder is held out, "
                    "never trained on. Writes a checkpoint after every epoch; --resume continues one exactly.",
        late=help_defaults("explorer.methods.inpainting.train", "InpaintConfig"))
    add_loop_args(p, batch="crops", curve="every step's loss, each epoch's terms and held-out loss",
                  seed="the initialisation, sampling, augmentation and holes (default {d.seed})",
                  out="inpainter.pt")
    p.add_argument("--size", type=T.integer(32, 1024), default=None, help="training crop side in pixels "
                   "(default {d.size}; the in-painter then serves models whose input is 0.5x to 4x that)")
    p.add_argument("--width", type=T.integer(4, 512), default=None,
                   help="channels of the network's first level (default {d.width})")
    p.add_argument("--edge", type=T.number(0.0, 100.0), default=None,
                   help="weight of the L1 on image differences in the holes (default {d.edge:g})")
    p.add_argument("--hold-out-every", type=T.integer(0), default=None,
                   help="hold out every N-th photo of the sorted folder, never trained on (default "
                        "{d.hold_out_every}: the explainer's split, 400 of the 500 shared photos trained on)")
    p.add_argument("--export", default=None, metavar="PT", type=T.output_file("exported in-painter"),
                   help="also write the network alone (no training state: what is shipped as the default "
                        "in-painter, resources/checkpoints/inpainter.pt) after every epoch")
    p.add_argument("--device", default=None, type=T.device(), help="cpu, cuda, cuda:N (default: CUDA when present)")
    p.set_defaults(func=cmd_train_inpainter)


def cmd_train_inpainter(args) -> int:
    from explorer.methods.explainer_net.data import describe_skipped
    from explorer.methods.inpainting.train import prepare_training
    from explorer.models.device import pick_device
    from explorer.perturb.inpainter import param_count

    with skipped_files_as_lines():
        device = pick_device(args.device)
        trainer, out = prepare_training(args.folder, {k: getattr(args, k) for k in SETTINGS}, device=device,
                                        resume=args.resume, out=args.out)
        skipped = trainer.folder.skipped
        print(f"training the in-painter ({param_count(trainer.net)} parameters, width {trainer.cfg.width}) on "
              f"{len(trainer.images)} photo(s), {len(trainer.held_out)} held out, from {args.folder}"
              + (f" ({describe_skipped(skipped)})" if skipped else "")
              + f"; {trainer.cfg.size}px crops, seed {trainer.cfg.seed}, device {device}", file=sys.stderr)

        def on_epoch(t0: float) -> None:
            val = trainer.history[-1].get("val_l1")
            print(f"epoch {trainer.epoch}/{trainer.cfg.epochs} done in {time.perf_counter() - t0:.1f} s"
                  + (f"; held-out L1 {val:.4f}" if val is not None else ""), file=sys.stderr, flush=True)
            if args.export:
                trainer.save(args.export, training_state=False)
            if args.curve:
                from explorer.methods.explainer_net.curve import save_curve

                save_curve(args.curve, trainer.step_losses, trainer.history,
                           f"in-painter: {len(trainer.images)} photos, {trainer.cfg.size}px, seed "
                           f"{trainer.cfg.seed}, epoch {trainer.epoch}/{trainer.cfg.epochs}",
                           terms=("l1", "edge", "val_l1", "val_edge"))

        return run_loop(trainer, out, args.quiet, on_epoch)
