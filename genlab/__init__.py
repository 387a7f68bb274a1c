"""genlab: the library behind the generative-modeling DVC pipeline.

Stages in ``stages/`` are thin: they read params.yaml and call functions here.
Nothing in this package reads params.yaml or sys.argv (except the GENLAB_PARAMS_AUDIT hook in
genlab.config, a test aid).
"""

__version__ = "0.1.0"
