"""``explorer train-inpainter DIR [--epochs N ...] [--resume CKPT] [--out CKPT] [--device cuda]``: train the
project's learned in-painter (the ``learned`` in-filler) on a folder of photos. The training itself is
``explorer.methods.inpainting.train``; this module reads the options and prints the progress."""

from __future__ import annotations

import sys
import time
import warnings

from explorer.core import argtypes as T

SETTINGS = ("epochs", "batch_size", "lr", "size", "width", "edge", "seed", "hold_out_every")


def _defaults(p) -> None:
    from explorer.methods.inpainting.train import InpaintConfig

    d = InpaintConfig()
    for a in p._actions:
        if a.help:
            a.help = a.help.format(d=d)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train-inpainter", help="train the learned in-painter (infill=learned) on a folder of photos",
        description="Train the small U-Net in-painter that fills the holes FIDO, extremal perturbations and "
                    "RISE cut into an image (docs/methods.md §2.2), on a folder of photos (any layout, searched "
                    "recursively; no labels). Every --hold-out-every-th photo of the sorted folder is held out, "
                    "never trained on. Writes a checkpoint after every epoch; --resume continues one exactly.",
        late=_defaults)
    p.add_argument("folder", metavar="DIR", type=T.existing_dir("folder of training images"),
                   help="folder of training images")
    p.add_argument("--epochs", type=T.integer(1), default=None,
                   help="total epochs (default {d.epochs}; with --resume: the total to reach)")
    p.add_argument("--batch-size", type=T.integer(1), default=None, help="crops per step (default {d.batch_size})")
    p.add_argument("--lr", type=T.number(0.0, 1.0, low_open=True), default=None,
                   help="Adam learning rate (default {d.lr:g})")
    p.add_argument("--size", type=T.integer(32, 1024), default=None, help="training crop side in pixels "
                   "(default {d.size}; the in-painter then serves models whose input is 0.5x to 4x that)")
    p.add_argument("--width", type=T.integer(4, 512), default=None,
                   help="channels of the network's first level (default {d.width})")
    p.add_argument("--edge", type=T.number(0.0, 100.0), default=None,
                   help="weight of the L1 on image differences in the holes (default {d.edge:g})")
    p.add_argument("--hold-out-every", type=T.integer(0), default=None,
                   help="hold out every N-th photo of the sorted folder, never trained on (default "
                        "{d.hold_out_every}: the explainer's split, 400 of the 500 shared photos trained on)")
    p.add_argument("--curve", default=None, metavar="PNG", type=T.output_file("training curve"),
                   help="write the training curve (every step's loss, each epoch's terms and held-out loss) to "
                        "this PNG after every epoch")
    p.add_argument("--seed", type=T.integer(0, 2**32 - 1), default=None,
                   help="seed of the initialisation, sampling, augmentation and holes (default {d.seed})")
    p.add_argument("--out", default=None, metavar="CKPT", type=T.output_file("checkpoint file"),
                   help="checkpoint to write (default: inpainter.pt; with --resume: the resumed file)")
    p.add_argument("--export", default=None, metavar="PT", type=T.output_file("exported in-painter"),
                   help="also write the network alone (no training state: what is shipped as the default "
                        "in-painter, resources/checkpoints/inpainter.pt) after every epoch")
    p.add_argument("--resume", default=None, metavar="CKPT", type=T.existing_file("checkpoint"),
                   help="continue training from this checkpoint")
    p.add_argument("--device", default=None, type=T.device(), help="cpu, cuda, cuda:N (default: CUDA when present)")
    p.add_argument("--quiet", action="store_true", help="print only the summary, not every step")
    p.set_defaults(func=cmd_train_inpainter)


def cmd_train_inpainter(args) -> int:
    from explorer.methods.explainer_net.data import SkippedImageWarning, describe_skipped
    from explorer.methods.inpainting.train import prepare_training
    from explorer.models.device import pick_device
    from explorer.perturb.inpainter import param_count

    def show(message, category, filename, lineno, file=None, line=None):  # one plain line per skipped file
        print(f"explorer: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("always", SkippedImageWarning)
        warnings.showwarning = show
        device = pick_device(args.device)
        trainer, out = prepare_training(args.folder, {k: getattr(args, k) for k in SETTINGS}, device=device,
                                        resume=args.resume, out=args.out)
        skipped = trainer.folder.skipped
        print(f"training the in-painter ({param_count(trainer.net)} parameters, width {trainer.cfg.width}) on "
              f"{len(trainer.images)} photo(s), {len(trainer.held_out)} held out, from {args.folder}"
              + (f" ({describe_skipped(skipped)})" if skipped else "")
              + f"; {trainer.cfg.size}px crops, seed {trainer.cfg.seed}, device {device}", file=sys.stderr)
        t0 = time.perf_counter()
        last = None
        for prog in trainer.run(out=out):
            last = prog
            if not args.quiet:
                print(prog.line(), flush=True)
            if prog.saved:
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
    if last is None:
        print(f"nothing to do: {out} already has {trainer.epoch} epoch(s) (ask for more with --epochs)")
        return 0
    print(f"done: {trainer.epoch} epoch(s), {trainer.global_step} step(s) in {time.perf_counter() - t0:.1f} s; "
          f"last loss {last.loss:.4f}; wrote {out}")
    return 0
