"""Stage train_gan: train the GAN on --data, checkpoint into --checkpoints (resumed after an
interruption), log to --live with dvclive, and write the finished model to --model."""

import argparse

from genlab import stage
from genlab.params import read_all


def read_settings(params):
    """Every train.* and gan.* value this stage reads, checked: (genlab.params.Train, genlab.params.Gan)."""
    return read_all(params, "train", "gan")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True, help="normalize's output folder (data/processed)")
    ap.add_argument("--model", required=True, help="output model folder (models/gan)")
    ap.add_argument("--checkpoints", required=True, help="checkpoint folder, kept between runs (checkpoints/train_gan)")
    ap.add_argument("--live", required=True, help="dvclive folder (dvclive/train_gan)")
    args = ap.parse_args()
    train, gan = read_settings(stage.read_params())

    from genlab.data.processed import load_meta
    from genlab.io import check_outputs
    from genlab.training import budget

    meta = load_meta(args.data)
    _, n_params = budget.gan_counts(meta["shape"], gan, n_classes=meta["n_classes"])
    check_outputs({args.model: budget.model_disk(n_params), args.checkpoints: budget.checkpoint_disk(n_params),
                   args.live: budget.LIVE_DISK}, "train_gan")

    from genlab.training.gan import train_gan
    from genlab.training.loop import TrainSettings, load_training_data

    stage.sigterm_as_interrupt()
    dataset = load_training_data(args.data, ["train"], in_memory=train.data_in_memory)
    train_gan(dataset, args.model, args.checkpoints, args.live, gan=gan, settings=TrainSettings.from_params(train))
    print(f"train_gan: {gan.arch} GAN trained for {train.epochs} iterations -> {args.model}")


if __name__ == "__main__":
    stage.run(main)
