"""serve: `genlab serve MODELS...`, a local web app over trained model folders or their exports (the
genlab model folder an export carries in model/), with FastAPI and one page.

The page (serve.html, no external resource: it works offline) calls a small JSON/PNG API. Every image is
made by the functions the `genlab` command uses (genlab.command: generate_images, interpolation_images,
edit_images, grid_png), on models loaded once at start-up. The command hands its module to serve() as
`command` (this phase may not import the command layer above it), so there is one implementation:

  GET  /                  the page
  GET  /api/models        each model: family, conditional, class names, image shape, what it offers
  GET  /api/generate      ?model=&seed=&n=[&cls=]          -> a PNG grid (`genlab generate`)
  GET  /api/interpolate   ?model=&src=&dst=&seed=&steps=   -> {"frames": [PNG data URI, ...]} (`genlab interpolate`)
  POST /api/edit          form: model, to, steps, image    -> {"frames", "from", "to"}, the VAE's
                          reconstruction first, then along the attribute vector (`genlab edit`)

A request the models cannot serve (an unknown class, an upload that is not an image or is of the wrong
size or channels, too many images) is HTTP 400 with {"error": one line}; the page shows that line and
the server keeps serving. Model calls run one at a time (a lock): Keras models are not meant to be
called from several threads at once.
"""

import argparse
import base64
import io
import socket
import threading
from pathlib import Path

from genlab.errors import GenlabError

MAX_UPLOAD = 4 * 1024 * 1024   # bytes: an image of the model's size is a few kilobytes
PAGE = Path(__file__).with_name("serve.html")   # the page: HTML, CSS and script in one file


class NamedUpload(io.BytesIO):
    """An uploaded file's bytes that print as its name: genlab.command.read_image names its input
    in its error lines (`shirt.jpg is 640x480 pixels: this model takes 28x28 ...`)."""

    def __init__(self, data, name):
        super().__init__(data)
        self.name = name or "the upload"

    def __str__(self):
        return self.name

    __format__ = lambda self, spec: format(str(self), spec)   # noqa: E731


class Models:
    """The served models, loaded once: {name: model}, their class names and (VAE) class codes."""

    def __init__(self, command, model_dirs, meta, data, max_images=256):
        """command: the module genlab.command (its image functions); model_dirs: model folders or exports."""
        from genlab.models.load import load_model
        self.cmd, self.data, self.max_images = command, data, max_images
        class_names, vae_class_codes = command.class_names, command.vae_class_codes
        self.models, self.names, self.codes = {}, {}, {}
        self.lock = threading.Lock()
        for d in model_dirs:
            path = Path(d)
            if not path.is_dir():
                raise GenlabError(f"{d} is not a folder: give model folders the pipeline wrote "
                                  "(models/gan, models/vae) or exports of them (genlab export)")
            name = path.name if path.name not in self.models else f"{path.parent.name}/{path.name}"
            model = load_model(command.model_dir(path, "serve"))
            self.models[name] = model
            self.names[name] = class_names(meta, model.config.get("n_classes"))
            if model.family == "vae" and self.names[name]:
                try:
                    self.codes[name] = vae_class_codes(model, data)
                except GenlabError:
                    self.codes[name] = None   # class ends and edits then say what is missing
        if not self.models:
            raise GenlabError("give at least one model folder (models/gan, models/vae)")

    def describe(self):
        """What the page needs to know about each model."""
        out = []
        for name, m in self.models.items():
            classes = self.names[name] or []
            conditional = m.family == "gan" and m.conditional
            out.append({"name": name, "family": m.family, "conditional": conditional,
                        "classes": classes if (conditional or m.family == "vae") else [],
                        "shape": list(m.config["shape"]), "latent_dim": m.latent_dim,
                        "class_ends": conditional or (m.family == "vae" and self.codes.get(name) is not None),
                        "edit": m.family == "vae", "max_images": self.max_images})
        return out

    def get(self, name):
        if name not in self.models:
            raise GenlabError(f"unknown model {name!r}: this server has {', '.join(self.models)}")
        return self.models[name], self.names[name]

    def _count(self, what, n):
        if n < 1 or n > self.max_images:
            raise GenlabError(f"{what} {n}: give 1 to {self.max_images} images per request "
                              "(genlab serve --max-images sets the limit)")

    def generate(self, name, n, seed, cls=None):
        """A PNG grid of `genlab generate MODEL -n N --seed S [--class C]`."""
        import numpy as np
        self._count("count", n)
        args = argparse.Namespace(command="generate", n=n, seed=seed, cls=cls or None, ncol=None)
        self.cmd.check_args(args)
        model, names = self.get(name)
        with self.lock:
            x01, _ = self.cmd.generate_images(model, args, names)
        return self.cmd.grid_png(x01, int(np.ceil(np.sqrt(n))), scale=1)

    def interpolate(self, name, src, dst, seed, steps, cls=None):
        """The frames of `genlab interpolate MODEL --from A --to B --seed S --steps K`."""
        self._count("steps", steps)
        args = argparse.Namespace(command="interpolate", src=src, dst=dst, seed=seed, steps=steps,
                                  cls=cls or None, data=self.data, class_codes=self.codes.get(name))
        self.cmd.check_args(args)
        model, names = self.get(name)
        with self.lock:
            x01 = self.cmd.interpolation_images(model, args, names)
        return {"frames": [self.data_uri(x[None]) for x in x01]}

    def edit(self, name, image_bytes, filename, to, steps):
        """The frames of `genlab edit MODEL --image FILE --to C --steps K`: the reconstruction first."""
        self._count("steps", steps)
        if len(image_bytes) > MAX_UPLOAD:
            raise GenlabError(f"{filename} is {len(image_bytes) // 1024} KB: give an image of the model's size "
                              f"(at most {MAX_UPLOAD // 1024 // 1024} MB)")
        if not image_bytes:
            raise GenlabError("no image was uploaded: choose a PNG or JPEG file first")
        args = argparse.Namespace(command="edit", image=NamedUpload(image_bytes, filename), to=to, src=None,
                                  seed=0, steps=steps, data=self.data, class_codes=self.codes.get(name))
        self.cmd.check_args(args)
        model, names = self.get(name)
        with self.lock:
            x01, start, target = self.cmd.edit_images(model, args, names)
        return {"frames": [self.data_uri(x[None]) for x in x01], "from": names[start], "to": names[target]}

    def data_uri(self, x01, scale=1):
        """Images (N, H, W, C) in [0, 1] -> a PNG data URI of their grid (one row)."""
        png = self.cmd.grid_png(x01, len(x01), scale=scale)
        return "data:image/png;base64," + base64.b64encode(png).decode()


def make_app(models):
    """The FastAPI application over a Models."""
    from fastapi import FastAPI, File, Form, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response

    app = FastAPI(title="genlab serve", docs_url=None, redoc_url=None, openapi_url=None)
    page_html = PAGE.read_text()

    @app.exception_handler(GenlabError)
    async def bad_request(request: Request, exc: GenlabError):
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def bad_field(request: Request, exc: RequestValidationError):
        return JSONResponse({"error": validation_line(exc.errors())}, status_code=400)

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception):   # a bug, not the user's input: say so, keep serving
        return JSONResponse({"error": f"the server failed ({type(exc).__name__}: {exc}); see its terminal"},
                            status_code=500)

    @app.get("/", response_class=HTMLResponse)
    def page():
        return page_html

    @app.get("/api/models")
    def api_models():
        return models.describe()

    @app.get("/api/generate")
    def api_generate(model: str, seed: int = 0, n: int = 16, cls: str = ""):
        return Response(models.generate(model, n, seed, cls), media_type="image/png",
                        headers={"Cache-Control": "no-store"})

    @app.get("/api/interpolate")
    def api_interpolate(model: str, src: str, dst: str, seed: int = 0, steps: int = 9, cls: str = ""):
        return models.interpolate(model, src, dst, seed, steps, cls)

    @app.post("/api/edit")
    def api_edit(model: str = Form(...), to: str = Form(...), steps: int = Form(7),
                 image: UploadFile = File(...)):
        data = image.file.read(MAX_UPLOAD + 1)
        return models.edit(model, data, image.filename, to, steps)

    return app


def validation_line(errors):
    """FastAPI's list of field errors -> one line ("seed: Input should be a valid integer ...")."""
    parts = []
    for e in errors:
        field = ".".join(str(x) for x in e.get("loc", ())[1:]) or "request"
        parts.append(f"{field}: {e.get('msg', 'invalid value')}")
    return "; ".join(parts) or "invalid request"


def check_port(host, port):
    """Refuse a port that is taken before loading models (uvicorn would say so only after)."""
    if not 0 < port < 65536:
        raise GenlabError(f"--port must be 1 to 65535, got {port}")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        try:
            s.bind((host, port))
        except OSError as e:
            raise GenlabError(f"cannot listen on {host}:{port} ({e.strerror}): give another --port, or a "
                              "--host of this machine") from None


def serve(command, model_dirs, *, host="127.0.0.1", port=8000, meta, data, max_images=256, out=None):
    """Load the models once, then serve the page until Ctrl+C. Returns the summary line. command: the
    module genlab.command, whose functions make the images."""
    import sys

    import uvicorn
    check_port(host, port)
    models = Models(command, model_dirs, meta, data, max_images)
    print(f"genlab serve: http://{host}:{port}/ serving {', '.join(models.models)} (Ctrl+C stops)",
          file=out or sys.stdout, flush=True)
    uvicorn.run(make_app(models), host=host, port=port, log_level="warning")
    return f"stopped serving {', '.join(models.models)}"

