"""occbench's own plug-in: the built-in completers, recognizers, data sets, protocols and
occlusion forms, declared exactly as a third-party package declares its own.

``pyproject.toml`` names this module in the entry-point group ``occbench.plugins``; importing
it registers everything below (lazy ``module:attr`` targets: nothing heavy is imported until
a model or protocol is used). A package of yours does the same::

    # mypkg/occbench_plugin.py
    from occbench import registry
    registry.recognizers.register("arcface-r100", "mypkg.arcface:ArcFace", base="arcface-r100")

    # pyproject.toml
    [project.entry-points."occbench.plugins"]
    mypkg = "mypkg.occbench_plugin"

Each registration is checked (:mod:`occbench.registry`): a name already registered, a metadata
key the axis does not define and a target of the wrong kind are errors; a plug-in replaces a
built-in only on purpose, with ``replace=True``.
"""

from occbench import registry
from occbench.occlusion import RECT, TEXT
from occbench.occlusion_landmarks import GLASSES, MASK

# completers; ``order``: their rows in Table I (the paper's order), others after them
registry.completers.register("occluded", "occbench.models.completers:OccludedCompleter", order=0)
registry.completers.register("clean", "occbench.models.completers:CleanCompleter", order=1)
# non-blind classical floors (OpenCV inpainting given the true mask) and a user's ONNX graph
registry.completers.register("inpaint-telea", "occbench.models.inpaint:telea", order=1.5)
registry.completers.register("inpaint-ns", "occbench.models.inpaint:navier_stokes", order=1.6)
registry.completers.register("onnx", "occbench.models.onnx_completer:OnnxCompleter")

# recognizers
registry.recognizers.register("dlib", "occbench.models.dlib_recognizer:DlibRecognizer")
registry.recognizers.register("onnx", "occbench.models.onnx_recognizer:OnnxRecognizer")
registry.recognizers.register("fake", "occbench.models.fake:FakeRecognizer")

# data sets: ``loader(data_root) -> Dataset``
for _name in ("lfw", "facescrub", "celeba", "megaface"):
    registry.datasets.register(_name, f"occbench.data.readers:load_{_name}")
# SCHEME:ARG data sets
registry.datasets.register("folder", "occbench.data.readers:load_folder_scheme", scheme=True)
registry.datasets.register("bin", "occbench.data.insightface_bin:load_bin", scheme=True)
# real occlusions (issue 33): rof:neutral|sunglasses|masked reads <data root>/ROF/<condition>,
# mfr2 reads <data root>/mfr2 (public snapshots; see README "Real occlusions")
registry.datasets.register("rof", "occbench.data.real_occlusions:load_rof", scheme=True)
registry.datasets.register("mfr2", "occbench.data.real_occlusions:load_mfr2")
# in-memory synthetic sets for wiring tests (with the fake recognizer)
registry.datasets.register("toy", "occbench.data.memory:load_toy")
registry.datasets.register("toy-distractors", "occbench.data.memory:load_toy_distractors")

# protocols; ``default=k``: the k-th protocol run when --protocol is not given
registry.protocols.register("identification",
                            "occbench.protocols.identification:Identification", default=1)
registry.protocols.register("verification",
                            "occbench.protocols.verification:Verification", default=2)
registry.protocols.register("reconstruction",
                            "occbench.protocols.reconstruction:Reconstruction", default=3)
registry.protocols.register("landmarks", "occbench.protocols.landmarks:Landmarks")
registry.protocols.register(
    "identification-clean-gallery",
    "occbench.protocols.identification:IdentificationCleanGallery")
registry.protocols.register("identification-real",
                            "occbench.protocols.real_occlusion:RealOcclusion")

# occlusion forms (instances: their sizes and aliases are read without drawing anything);
# ``order``: their place in tables and figures
for _i, _form in enumerate((RECT, TEXT, MASK, GLASSES)):
    registry.forms.register(_form.name, _form, aliases=_form.aliases, order=_i)
