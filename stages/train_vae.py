"""Stage train_vae: train the VAE (or plain autoencoder) on --data, validating on its val split,
checkpoint into --checkpoints (resumed after an interruption), log to --live with dvclive, and
write the finished model to --model."""

import argparse

from genlab import stage
from genlab.params import read_all


def read_settings(params):
    """Every train.* and vae.* value this stage reads, checked: (genlab.params.Train, genlab.params.Vae)."""
    return read_all(params, "train", "vae")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True, help="normalize's output folder (data/processed)")
    ap.add_argument("--model", required=True, help="output model folder (models/vae)")
    ap.add_argument("--checkpoints", required=True, help="checkpoint folder, kept between runs (checkpoints/train_vae)")
    ap.add_argument("--live", required=True, help="dvclive folder (dvclive/train_vae)")
    args = ap.parse_args()
    train, vae = read_settings(stage.read_params())

    from genlab.data.processed import load_meta
    from genlab.io import check_outputs
    from genlab.training import budget

    meta = load_meta(args.data)
    _, n_params = budget.vae_counts(meta["shape"], vae)
    check_outputs({args.model: budget.model_disk(n_params), args.checkpoints: budget.checkpoint_disk(n_params),
                   args.live: budget.LIVE_DISK}, "train_vae")

    from genlab.training.loop import TrainSettings, load_training_data
    from genlab.training.vae import train_vae

    stage.sigterm_as_interrupt()
    dataset = load_training_data(args.data, ["train", "val"], in_memory=train.data_in_memory)
    train_vae(dataset, args.model, args.checkpoints, args.live, vae=vae, settings=TrainSettings.from_params(train))
    print(f"train_vae: {vae.arch} {vae.variant} trained for {train.epochs} iterations -> {args.model}")


if __name__ == "__main__":
    stage.run(main)
