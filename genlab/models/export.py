"""Export a trained model for use without genlab: Keras `.keras` files and a TensorFlow SavedModel.

OUT_DIR/
  export.json        family, image shape, latent_dim, class names, the signatures below, and for a
                     plain autoencoder the Gaussian its codes are sampled from
  GAN: generator.keras    inputs z float32 (N, latent_dim) [, label int32 (N,) if conditional]
                          -> images float32 (N, H, W, C) in [0, 1]
  VAE: encoder.keras      x01 float32 (N, H, W, C) in [0, 1] -> z_mean (N, latent_dim) [, z_log_var]
       decoder.keras      z float32 (N, latent_dim) -> images float32 (N, H, W, C) in [0, 1]
                          (the Bernoulli means: sigmoid of the decoder's logits)
  saved_model/       signatures: GAN `serving_default` (z [, label] -> images);
                     VAE `serving_default` = `decode` (z -> images) and `encode` (x01 -> z_mean [, z_log_var])
  MODEL_CARD.md      (written by `genlab export`: genlab.outputs.model_card) what it is, its data, params,
                     metrics, intended use and misuse
  model/             (written by `genlab export`) the genlab model folder it was made from: `genlab serve
                     OUT_DIR` loads it

`keras.models.load_model("generator.keras")` or `tf.saved_model.load("saved_model")` loads them with
no genlab import. New images as the pipeline draws them: z ~ N(0, I) (a VAE), or for a GAN
z = numpy.random.default_rng(seed).standard_normal((n, latent_dim)) gives `genlab generate`'s images.
"""

import json
from pathlib import Path

from genlab.errors import GenlabError
from genlab.io import atomic_dir, write_json

FORMAT = 1


def _unit_models(model):
    """name -> a keras.Model over the trained layers whose images are in [0, 1]."""
    import keras
    from keras import layers
    if model.family == "gan":
        g = model.generator
        out = layers.Rescaling(0.5, offset=0.5, name="to_unit")(g.outputs[0])
        return {"generator": keras.Model(g.inputs, out, name="generator")}
    d = model.decoder
    out = layers.Activation("sigmoid", name="bernoulli_mean")(d.outputs[0])
    return {"encoder": model.encoder, "decoder": keras.Model(d.inputs, out, name="decoder")}


def _archive(model, nets):
    import keras
    import tensorflow as tf
    archive = keras.export.ExportArchive()
    h, w, c = model.config["shape"]
    z = tf.TensorSpec([None, model.latent_dim], tf.float32, name="z")
    if model.family == "gan":
        gen = nets["generator"]
        archive.track(gen)
        if model.conditional:
            label = tf.TensorSpec([None], tf.int32, name="label")
            archive.add_endpoint("serving_default", lambda z, label: {"images": gen([z, label], training=False)},
                                 input_signature=[z, label])
        else:
            archive.add_endpoint("serving_default", lambda z: {"images": gen(z, training=False)},
                                 input_signature=[z])
        return archive
    enc, dec = nets["encoder"], nets["decoder"]
    archive.track(enc)
    archive.track(dec)
    x01 = tf.TensorSpec([None, h, w, c], tf.float32, name="x01")

    def encode(x01):
        out = enc(x01, training=False)
        return {"z_mean": out[0], "z_log_var": out[1]} if model.variational else {"z_mean": out}

    archive.add_endpoint("serving_default", lambda z: {"images": dec(z, training=False)}, input_signature=[z])
    archive.add_endpoint("decode", lambda z: {"images": dec(z, training=False)}, input_signature=[z])
    archive.add_endpoint("encode", encode, input_signature=[x01])
    return archive


def export(model, out_dir, class_names=None, extra=None, source_dir=None):
    """Write model (a loaded GAN or VAE) to the new folder out_dir, atomically (whole or not at all).
    extra: {file name: text} written beside the networks (the model card, MODEL_CARD.md); source_dir:
    the model folder it was loaded from, copied into out_dir/model/ (what `genlab serve` loads)."""
    out = Path(out_dir)
    if out.exists():
        raise GenlabError(f"{out} already exists: give a new folder, or remove it first")
    if not out.parent.is_dir():
        raise GenlabError(f"{out.parent} does not exist: create it first")
    nets = _unit_models(model)
    config = {k: model.config[k] for k in ("shape", "latent_dim") if k in model.config}
    info = {"format": FORMAT, "family": model.family, **config, "class_names": class_names,
            "images": "float32 (N, H, W, C) in [0, 1]",
            "files": {f"{name}.keras": net.name for name, net in nets.items()}}
    if model.family == "gan":
        info["conditional"] = model.conditional
        info["signatures"] = {"serving_default": "z [, label] -> images"}
        info["sampling"] = "z = numpy.random.default_rng(seed).standard_normal((n, latent_dim)), float32"
    else:
        info["variant"] = model.config["variant"]
        info["signatures"] = {"serving_default": "z -> images", "decode": "z -> images",
                              "encode": "x01 -> z_mean" + (", z_log_var" if model.variational else "")}
        if model.config.get("code_gmm"):   # vae.prior gmm (the default): what genlab's generate() draws from
            info["sampling"] = ("rng = numpy.random.default_rng(seed); w = numpy.asarray(weights); "
                                "k = rng.choice(len(w), n, p=w / w.sum()); "
                                "eps = rng.standard_normal((n, latent_dim)); z = means[k] + scale_trils[k] @ eps "
                                "per row (code_gmm, float64, then float32)")
            info["code_gmm"] = model.config["code_gmm"]
        elif model.variational:
            info["sampling"] = "z ~ N(0, I)"
        else:
            info["sampling"] = "z = mean + scale_tril @ eps, eps ~ N(0, I) (code_gaussian)"
            info["code_gaussian"] = model.config.get("code_gaussian")
    with atomic_dir(out) as tmp:
        for name, net in nets.items():
            net.save(str(Path(tmp) / f"{name}.keras"))
        _archive(model, nets).write_out(str(Path(tmp) / "saved_model"), verbose=False)
        for name, text in (extra or {}).items():
            (Path(tmp) / name).write_text(text)
        if source_dir is not None:
            import shutil
            (Path(tmp) / "model").mkdir()
            for f in [Path(source_dir) / "config.json", *sorted(Path(source_dir).glob("*.weights.h5"))]:
                shutil.copy2(f, Path(tmp) / "model" / f.name)
            info["files"]["model/"] = "the genlab model folder (config.json, weights): genlab serve loads it"
        write_json(Path(tmp) / "export.json", info)
    return json.loads((out / "export.json").read_text())
