"""The models trained in this repository (``baselines/``), as an occbench plug-in.

Named in ``pyproject.toml``'s entry-point group ``occbench.plugins``; importing it registers
the completers, recognizers and trainable models below with lazy targets (torch is imported
only when one is used). Metadata: a completer's ``order`` (its row in Table I), a
recognizer's ``base`` (whose occluded/clean rows a ``-occ`` variant is compared with), a
trainable model's ``folder`` (``baselines/<folder>/configs`` and ``weights``).
"""

from occbench import registry

_C2FDAN_ORDER = ("c2fdan-coarse", "c2fdan-no-cross", "c2fdan-no-self", "c2fdan-no-local",
                 "c2fdan-no-style", "c2fdan", "c2fdan-pixel-fine")

registry.completers.register("bvmr", "baselines.bvmr.adapter:BVMRCompleter", order=2)
for _i, _name in enumerate(_C2FDAN_ORDER):
    registry.completers.register(_name, f"baselines.c2fdan.adapter:{_name.replace('-', '_')}",
                                 order=3 + _i)
# the same networks continued on the ~51k faces (configs/faces51k.json; C2FDAN's identity
# losses from the distilled resnet50): weights <name>-small-faces51k
registry.completers.register("bvmr-51k", "baselines.bvmr.adapter:bvmr_faces51k", order=20)
for _i, _name in enumerate(_C2FDAN_ORDER):
    registry.completers.register(f"{_name}-51k",
                                 f"baselines.c2fdan.adapter:{_name.replace('-', '_')}_faces51k",
                                 order=21 + _i)

registry.recognizers.register("resnet50", "baselines.resnet50.adapter:resnet50")
registry.recognizers.register("resnet50-occ", "baselines.resnet50.adapter:resnet50_occ",
                              base="resnet50")
# the first weights (ArcFace head on the 5,797 shared CelebA faces), kept for reference
registry.recognizers.register("resnet50-small", "baselines.resnet50.adapter:resnet50_small")
registry.recognizers.register("resnet50-small-occ",
                              "baselines.resnet50.adapter:resnet50_small_occ",
                              base="resnet50-small")

for _name in ("resnet50", "resnet50-occ"):
    registry.trainable.register(_name, "baselines.resnet50.task:make_task", folder="resnet50")
registry.trainable.register("bvmr", "baselines.bvmr.task:make_task", folder="bvmr")
for _name in _C2FDAN_ORDER:
    registry.trainable.register(_name, "baselines.c2fdan.task:make_task", folder="c2fdan")
