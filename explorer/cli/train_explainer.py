"""``explorer train-explainer DIR [--epochs N ...] [--resume CKPT] [--out CKPT]``: train the explainer
network of Stalder et al. 2022 for a classifier on a folder of photos (the training itself is
``explorer.methods.explainer_net.train``; this module reads the options and prints the progress; the options
and the loop it shares with train-inpainter are ``cli/training.py``)."""

from __future__ import annotations

import sys

from explorer.cli.common import add_model_args, model_from_args
from explorer.cli.training import add_loop_args, help_defaults, run_loop, skipped_files_as_lines
from explorer.core import argtypes as T

SETTINGS = ("epochs", "batch_size", "lr", "size", "topk", "threshold", "width", "seed", "pair", "quad",
            "hold_out_every", "head")  # the options that are TrainConfig fields of the same names


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train-explainer", help="train an explainer network (class masks in one forward pass) on a folder of images",
        description="Train the explainer head of Stalder et al. 2022 for a classifier on a folder of images "
                    "(any layout, searched recursively; no labels needed: the classifier's own confident "
                    "predictions are the labels). Writes a checkpoint after every epoch; --resume continues one.",
        late=help_defaults("explorer.methods.explainer_net.train", "TrainConfig"))
    add_loop_args(p, batch="images", curve="every step's loss, each epoch's terms",
                  seed="the initialisation, sampling and augmentation (default {d.seed})",
                  out="explainer_<model>.pt")
    p.add_argument("--size", type=T.integer(0, 1024), default=None,
                   help="training resolution in pixels (default: the model's input size)")
    p.add_argument("--topk", type=T.integer(1), default=None,
                   help="at most this many pseudo-labels per image (default {d.topk})")
    p.add_argument("--threshold", type=T.number(0.0, 1.0), default=None,
                   help="probability a class needs to be a pseudo-label besides the top-1 (default {d.threshold:g})")
    p.add_argument("--width", type=T.integer(8), default=None, help="channels of the head (default {d.width})")
    p.add_argument("--head", choices=("guided", "tied"), default=None,
                   help="head design (default {d.head}): 'guided' upsamples the classifier's last feature map "
                        "with a learned content-aware guide; 'tied' (version 2) refines it additively")
    p.add_argument("--pair", type=T.number(0.0, 1.0), default=None,
                   help="probability that a frame is a composite of 2 photos (default {d.pair:g})")
    p.add_argument("--quad", type=T.number(0.0, 1.0), default=None,
                   help="probability that a frame is a 2x2 composite of 4 photos (default {d.quad:g})")
    p.add_argument("--hold-out-every", type=T.integer(0), default=None,
                   help="hold out every N-th image of the sorted folder for evaluation, never trained on "
                        "(recorded in the checkpoint; default 0 = train on all)")
    add_model_args(p)
    p.set_defaults(func=cmd_train_explainer)


def cmd_train_explainer(args) -> int:
    from explorer.methods.explainer_net.data import describe_skipped
    from explorer.methods.explainer_net.model import fingerprint
    from explorer.methods.explainer_net.train import prepare_training

    with skipped_files_as_lines():
        model = model_from_args(args)
        trainer, out = prepare_training(model, args.folder, {k: getattr(args, k) for k in SETTINGS},
                                        resume=args.resume, out=args.out)
        images = trainer.folder
        held = f", {len(trainer.held_out)} held out" if trainer.held_out else ""
        print(f"training an explainer for {model.id} ({fingerprint(model)}) on {len(trainer.images)} image(s){held} "
              f"from {args.folder}" + (f" ({describe_skipped(images.skipped)})" if images.skipped else "")
              + f"; taps {', '.join(trainer.explainer.taps)}; device {model.device}", file=sys.stderr)

        def on_epoch(t0: float) -> None:
            if args.curve:
                from explorer.methods.explainer_net.curve import save_curve

                save_curve(args.curve, trainer.step_losses, trainer.history,
                           f"explainer for {model.id}: {len(trainer.images)} images, seed {trainer.cfg.seed}, "
                           f"epoch {trainer.epoch}/{trainer.cfg.epochs}")

        return run_loop(trainer, out, args.quiet, on_epoch)
